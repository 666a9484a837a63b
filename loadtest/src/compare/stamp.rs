//! The send time every body starts with: nanoseconds since a process-wide
//! anchor, so a reader in the same process can tell how long ago a message
//! was due.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

/// The send time carried in the first 8 bytes of a body.
pub fn stamp(at: Instant) -> [u8; 8] {
    let nanos = at.saturating_duration_since(anchor()).as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX).to_le_bytes()
}

/// The send time of a body written by [`stamp`], if it has one.
pub fn stamped_at(body: &[u8]) -> Option<Instant> {
    let raw: [u8; 8] = body.get(..8)?.try_into().ok()?;
    Some(anchor() + Duration::from_nanos(u64::from_le_bytes(raw)))
}
