//! Consumption by offset: UpdateOffset, GetOffset and QueryOffset, on the
//! engine's committed offsets (PullMessage is in [`crate::grpc::pull`]).

use strata_tenancy::Permission;
use tonic::Request;

use crate::grpc::caller::{Caller, GrpcState};
use crate::grpc::failure::{Failure, ok};
use crate::grpc::pb::{self, Code};

/// (topic, queue) named by a message queue in the caller's tenant.
pub(crate) fn queue_of(
    caller: &Caller,
    mq: Option<&pb::MessageQueue>,
) -> Result<(String, u32), Failure> {
    let mq = mq.ok_or_else(|| Failure::bad_request("the request names no message queue"))?;
    let topic = caller.resource(mq.topic.as_ref(), "topic")?.to_string();
    let queue = u32::try_from(mq.id)
        .map_err(|_| Failure::bad_request(format!("queue id {} is negative", mq.id)))?;
    Ok((topic, queue))
}

pub(crate) fn offset_arg(offset: i64) -> Result<u64, Failure> {
    u64::try_from(offset).map_err(|_| Failure::bad_request(format!("offset {offset} is negative")))
}

pub(crate) fn offset_out(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

impl GrpcState {
    pub(crate) async fn update_offset_inner(
        &self,
        request: Request<pb::UpdateOffsetRequest>,
    ) -> Result<pb::UpdateOffsetResponse, Failure> {
        let caller = self.caller(&request, "UpdateOffset").await?;
        caller.require(Permission::Consume)?;
        let r = request.into_inner();
        let group = caller
            .resource(r.group.as_ref(), "consumer group")?
            .to_string();
        let (topic, queue) = queue_of(&caller, r.message_queue.as_ref())?;
        self.engine
            .require_group(&caller.tenant, &group)
            .await
            .map_err(crate::grpc::consume::consume_failure)?;
        self.engine
            .commit_offset(&caller.tenant, &group, &topic, queue, offset_arg(r.offset)?)
            .await
            .map_err(|e| match e {
                strata_engine::EngineError::OffsetOutOfRange { .. } => {
                    Failure::new(Code::BadRequest, e.to_string())
                }
                other => other.into(),
            })?;
        Ok(pb::UpdateOffsetResponse { status: Some(ok()) })
    }

    /// The group's committed offset. A queue without one answers
    /// OFFSET_NOT_FOUND (only pull consumers call this RPC).
    pub(crate) async fn get_offset_inner(
        &self,
        request: Request<pb::GetOffsetRequest>,
    ) -> Result<pb::GetOffsetResponse, Failure> {
        let caller = self.caller(&request, "GetOffset").await?;
        caller.require(Permission::Consume)?;
        let r = request.into_inner();
        let group = caller
            .resource(r.group.as_ref(), "consumer group")?
            .to_string();
        let (topic, queue) = queue_of(&caller, r.message_queue.as_ref())?;
        match self
            .engine
            .committed_offset(&caller.tenant, &group, &topic, queue)
            .await?
        {
            Some(offset) => Ok(pb::GetOffsetResponse {
                status: Some(ok()),
                offset: offset_out(offset),
            }),
            None => Err(Failure::new(
                Code::OffsetNotFound,
                format!("group {group:?} has no committed offset on {topic}/{queue}"),
            )),
        }
    }

    pub(crate) async fn query_offset_inner(
        &self,
        request: Request<pb::QueryOffsetRequest>,
    ) -> Result<pb::QueryOffsetResponse, Failure> {
        let caller = self.caller(&request, "QueryOffset").await?;
        caller.require(Permission::Consume)?;
        let r = request.into_inner();
        let (topic, queue) = queue_of(&caller, r.message_queue.as_ref())?;
        let engine = &self.engine;
        let offset = match pb::QueryOffsetPolicy::try_from(r.query_offset_policy) {
            Ok(pb::QueryOffsetPolicy::Beginning) => {
                engine
                    .queue_info(&caller.tenant, &topic, queue)?
                    .first_offset
            }
            Ok(pb::QueryOffsetPolicy::End) => {
                engine.queue_info(&caller.tenant, &topic, queue)?.end_offset
            }
            Ok(pb::QueryOffsetPolicy::Timestamp) => {
                let t = r.timestamp.ok_or_else(|| {
                    Failure::bad_request("the TIMESTAMP policy needs a timestamp")
                })?;
                let ms = crate::grpc::convert::timestamp_ms(&t);
                engine
                    .offset_for_time(&caller.tenant, &topic, queue, ms)
                    .await?
            }
            Err(_) => {
                return Err(Failure::bad_request(format!(
                    "unknown query offset policy {}",
                    r.query_offset_policy
                )));
            }
        };
        Ok(pb::QueryOffsetResponse {
            status: Some(ok()),
            offset: offset_out(offset),
        })
    }
}
