//! The compactor: the loops that move a node's data from its hot WAL to
//! object storage and keep what is there in shape.
//!
//! - **upload** ([`Compactor::upload_once`]): durable WAL batches from the
//!   checkpoint on are packed into one object (sorted by queue, then
//!   offset), PUT, then committed to the metadata store as per-queue ranges
//!   together with the new checkpoint, in one transaction fenced by the
//!   queues' owner epochs. Only then is WAL space released.
//! - **maintenance** ([`Compactor::maintain`]): retention expires old ranges;
//!   merges rewrite runs of small ranges, many queues per object; garbage
//!   collection deletes objects no committed range references.
//!
//! Every step is crash-safe: an object is only referenced after its commit,
//! so a crash leaves at worst an unreferenced object, which GC deletes; the
//! WAL is only released below a committed checkpoint, so nothing is lost; a
//! re-upload after a crash skips offsets already committed.
//!
//! The compactor talks to the log it serves only through [`TieredLog`]
//! (what the WAL holds, what the queues have in object storage, release
//! WAL space), and to objects and metadata through their own boundaries.
//! What to do is decided by pure planners, tested exhaustively without
//! storage: [`merge`] (which adjacent small ranges to rewrite), [`expiry`]
//! (which oldest ranges retention removes), [`gc`] (which objects nothing
//! references).
//!
//! It runs inside `strata serve` on the node's runtime (the engine is the
//! log), or as `strata compactor`, a separate process working on the
//! node's WAL volume ([`VolumeLog`]): the node then publishes its durable
//! mark, follows the checkpoint the uploads commit and releases its WAL
//! below it. The separate process needs a metadata store that two
//! processes can share (etcd): the embedded redb store is opened by one
//! process at a time.

mod compactor;
mod error;
pub mod expiry;
mod failures;
pub mod gc;
mod host;
mod maintenance;
pub mod merge;
mod merge_pass;
pub mod store_mark;
mod upload;
mod volume;

pub use compactor::{Compactor, CompactorConfig, Counters};
pub use error::{CompactorError, Result};
pub use host::{LiveQueue, Refresh, TieredLog};
pub use maintenance::MaintenanceSummary;
pub use merge_pass::MERGED_PREFIX;
pub use upload::{UPLOAD_PREFIX, UploadSummary, ranges_from_blocks};
pub use volume::VolumeLog;
