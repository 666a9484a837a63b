//! Object storage for Strata, in two halves.
//!
//! * [`format`](mod@format) — the **segment object format**: how the compactor packs many
//!   queues' WAL batches into one immutable object (compressed, checksummed
//!   blocks plus an index and footer), and how readers find and decode just
//!   the block they need. Pure functions over bytes, no I/O, so it is
//!   property-tested in isolation.
//! * [`Objects`] — the **object store wrapper**: the single path through which
//!   Strata talks to S3, a local directory, or memory. It stacks
//!   [layers](layers) over the backend: per-attempt timeouts, retries with
//!   exponential backoff and jitter, request/byte [metrics](ObjectMetrics),
//!   and, in tests (feature `faults`), fault injection, so callers stay free
//!   of retry loops and tests can simulate outages.
//!
//! [`conformance`] is a backend-agnostic test suite that every backend must
//! pass, shared by this crate's tests and by deployments that want to check a
//! new bucket.

mod config;
pub mod conformance;
pub mod format;
pub mod index_run;
pub mod layers;
mod local;
pub mod metrics;
mod store;

pub use config::{Backend, ObjectStoreConfig, normalize_prefix};
pub use format::{BlockMeta, FOOTER_LEN, Footer, FormatError, ObjectBuilder};
#[cfg(any(test, feature = "faults"))]
pub use layers::faults::Faults;
pub use local::PACE_CHUNK;
pub use metrics::ObjectMetrics;
pub use store::{ObjectError, ObjectInfo, Objects};
