//! Decides what the tiering loops do; the engine carries it out.
//!
//! Every function here is pure planning over plain data, so the policies can
//! be tested exhaustively without storage:
//!
//! - [`merge`]: which adjacent small ranges of a queue to rewrite as one
//!   per-queue object (defragmentation), so cold reads need few GETs;
//! - [`expiry`]: which of a queue's oldest ranges retention removes;
//! - [`gc`]: which objects no index entry references any more.

pub mod expiry;
pub mod gc;
pub mod merge;
