//! AckMessage: a batch of receipt handles acknowledged with one commit per
//! queue, one result entry per handle.

use strata_tenancy::Permission;
use tonic::Request;

use crate::grpc::caller::GrpcState;
use crate::grpc::consume::consume_failure;
use crate::grpc::failure::{Failure, ok};
use crate::grpc::pb::{self, Code};

impl GrpcState {
    pub(crate) async fn ack_inner(
        &self,
        request: Request<pb::AckMessageRequest>,
    ) -> Result<pb::AckMessageResponse, Failure> {
        let caller = self.caller(&request, "AckMessage").await?;
        caller.require(Permission::Consume)?;
        let r = request.into_inner();
        let group = caller
            .resource(r.group.as_ref(), "consumer group")?
            .to_string();
        let topic = caller.resource(r.topic.as_ref(), "topic")?.to_string();
        if r.entries.is_empty() {
            return Err(Failure::bad_request("AckMessage carries no entry"));
        }
        if r.entries.len() > strata_engine::pop::MAX_ACK_BATCH {
            return Err(Failure::bad_request(format!(
                "AckMessage carries {} entries; the limit is {}",
                r.entries.len(),
                strata_engine::pop::MAX_ACK_BATCH
            )));
        }
        // One commit per queue for the whole batch.
        let handles: Vec<String> = r.entries.iter().map(|e| e.receipt_handle.clone()).collect();
        let outcomes = self
            .engine
            .ack_many(&caller.tenant, &group, &topic, &handles)
            .await
            .map_err(consume_failure)?;
        let mut entries = Vec::with_capacity(r.entries.len());
        let mut failures = Vec::new();
        for (e, outcome) in r.entries.into_iter().zip(outcomes) {
            let status = match outcome {
                Ok(()) => ok(),
                Err(err) => {
                    let f = consume_failure(err);
                    failures.push((f.code, f.message.clone()));
                    f.status()
                }
            };
            entries.push(pb::AckMessageResultEntry {
                message_id: e.message_id,
                receipt_handle: e.receipt_handle,
                status: Some(status),
            });
        }
        let status = match failures.first() {
            None => ok(),
            // The official SDKs ack one handle per call and show only this
            // status: it carries the entry's own reason.
            Some((code, message))
                if failures.len() == entries.len() && failures.iter().all(|(c, _)| c == code) =>
            {
                let message = match failures.len() {
                    1 => message.clone(),
                    n => format!("none of the {n} entries was acknowledged; the first: {message}"),
                };
                Failure::new(*code, message).status()
            }
            Some(_) => {
                Failure::new(Code::MultipleResults, "some entries were not acknowledged").status()
            }
        };
        Ok(pb::AckMessageResponse {
            status: Some(status),
            entries,
        })
    }
}
