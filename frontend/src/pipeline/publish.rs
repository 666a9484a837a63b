//! The publish stage: what a batch costs (the stored-bytes limit, the
//! publish rates) and how it is handed to the engine (at once, or each
//! message at its delivery time).

use std::sync::Arc;

use strata_engine::{Engine, PublishMessage, Published};
use strata_tenancy::{Rate, RateLimiter};

use super::{Caller, ServiceError};

/// Refuses the batch once the tenant stores more than its plan allows, then
/// takes its messages and bytes from the publish rates (all or nothing).
pub async fn charge<'m>(
    engine: &Engine,
    limiter: &RateLimiter,
    caller: &Caller,
    messages: impl IntoIterator<Item = &'m PublishMessage>,
) -> Result<(), ServiceError> {
    caller.within_stored_bytes(|| engine.meter().stored_bytes(&caller.tenant).total())?;
    let (count, bytes) = messages.into_iter().fold((0u64, 0u64), |(n, b), m| {
        (n + 1, b + m.message.body.len() as u64)
    });
    caller
        .take_all(
            limiter,
            &[(Rate::PublishBytes, bytes), (Rate::PublishMessages, count)],
        )
        .await
}

/// Charges the batch, then publishes it. Messages with a delivery time
/// (Unix ms) go to a DELAY topic, each at its own time, as one batch;
/// either every message of a batch has one or none has.
pub async fn publish(
    engine: &Arc<Engine>,
    limiter: &RateLimiter,
    caller: &Caller,
    topic: &str,
    batch: Vec<(PublishMessage, Option<i64>)>,
) -> Result<Vec<Published>, ServiceError> {
    let delayed = batch.iter().filter(|(_, at)| at.is_some()).count();
    if delayed > 0 && delayed < batch.len() {
        return Err(ServiceError::invalid(
            "either every message of a publish has a delivery time (deliver_at_ms) or none has",
        ));
    }
    charge(engine, limiter, caller, batch.iter().map(|(m, _)| m)).await?;
    if delayed == 0 {
        let plain = batch.into_iter().map(|(m, _)| m).collect();
        return Ok(engine.publish(&caller.tenant, topic, plain).await?);
    }
    // One WAL append and one metadata commit for the whole batch.
    let timed = batch
        .into_iter()
        .map(|(m, at)| (m, at.unwrap_or_default()))
        .collect();
    Ok(engine.publish_each_at(&caller.tenant, topic, timed).await?)
}
