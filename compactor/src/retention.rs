//! Retention policies and the WAL position of a batch.

/// How long a queue's data must be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionPolicy {
    /// Keep everything.
    Unlimited,
    /// Keep batches whose append time is newer than `now - ms`.
    ExpireAfterMs(u64),
}

/// Where one retained batch sits in the WAL and when it was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRef {
    pub lsn: u64,
    pub timestamp_ms: i64,
}
