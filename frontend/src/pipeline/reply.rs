//! Where a read's reply is encoded. Turning up to a thousand messages into
//! JSON or protobuf is CPU work: a large reply is encoded at low priority
//! ([`Engine::for_readers`]), so producers keep the async workers while
//! readers catch up. A small one (a tail reader's few messages) costs tens
//! of microseconds, less than the hop would, and is encoded in place.

use strata_common::StoredMessage;
use strata_engine::{Engine, EngineError};

/// Replies of at most this many message bytes (bodies, properties, keys:
/// `Message::approx_size`) are encoded where the request is served.
pub const INLINE_ENCODE_BYTES: usize = 64 << 10;

/// The body bytes (what the consume quota charges) and the whole size
/// (what encoding costs) of `messages`, in one pass.
pub fn sizes<'a>(messages: impl IntoIterator<Item = &'a StoredMessage>) -> (u64, usize) {
    messages.into_iter().fold((0, 0), |(bodies, whole), m| {
        (
            bodies + m.message.body.len() as u64,
            whole + m.message.approx_size(),
        )
    })
}

/// Runs `encode` in place for a reply of `size` bytes up to
/// [`INLINE_ENCODE_BYTES`], on the readers' bounded pool beyond.
pub async fn encode<F, T>(engine: &Engine, size: usize, encode: F) -> Result<T, EngineError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if size <= INLINE_ENCODE_BYTES {
        Ok(encode())
    } else {
        engine.for_readers(encode).await
    }
}
