//! Transactions over gRPC: half messages, EndTransaction, and check-backs
//! sent to a connected producer of the topic over its Telemetry stream.

use std::sync::Arc;
use std::time::Duration;

use strata_engine::{Engine, EngineError, Popped};
use strata_tenancy::Permission;
use tonic::Request;

use crate::grpc::caller::GrpcState;
use crate::grpc::failure::{Failure, ok};
use crate::grpc::pb::{self, Code};
use crate::grpc::producers::Producers;

/// Every second: asks producers about transactions due for a check-back.
pub fn spawn_check_loop(
    engine: Arc<Engine>,
    producers: Arc<Producers>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let clock = engine.clock().clone();
        let mut down = engine.shutdown_signal();
        loop {
            tokio::select! {
                _ = down.wait_for(|d| *d) => return,
                () = clock.sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = check_once(&engine, &producers).await {
                tracing::warn!(error = %e, "transaction check-back pass failed");
            }
        }
    })
}

/// One pass of check-backs (also called by tests).
pub async fn check_once(engine: &Arc<Engine>, producers: &Producers) -> Result<usize, EngineError> {
    let due = engine.due_transaction_checks().await?;
    let mut sent = 0;
    for check in due {
        let r = &check.record;
        if let Some(tx) = producers.find(&r.tenant, &r.topic) {
            let popped = Popped {
                queue: 0,
                attempt: 1,
                handle: String::new(),
                visible_ms: 0,
                message: check.message.clone(),
            };
            let resource = pb::Resource {
                resource_namespace: String::new(),
                name: r.topic.clone(),
            };
            let mut message = crate::grpc::consume::to_pb(
                popped,
                resource,
                // A half message is a TRANSACTION message by construction;
                // no topic lookup (the topic may be gone) can stall the pass.
                strata_engine::MessageType::Transaction,
                Duration::ZERO,
                &engine.config().node_id,
            );
            if let Some(sys) = message.system_properties.as_mut() {
                sys.receipt_handle = None;
                sys.invisible_duration = None;
                sys.message_id = r.message_id.clone();
            }
            let command = pb::TelemetryCommand {
                status: Some(ok()),
                command: Some(
                    pb::telemetry_command::Command::RecoverOrphanedTransactionCommand(
                        pb::RecoverOrphanedTransactionCommand {
                            message: Some(message),
                            transaction_id: r.transaction_id.clone(),
                        },
                    ),
                ),
            };
            if tx.try_send(Ok(command)).is_ok() {
                sent += 1;
            }
        }
        engine.note_transaction_check(r).await?;
    }
    Ok(sent)
}

impl GrpcState {
    pub(crate) async fn end_transaction_inner(
        &self,
        request: Request<pb::EndTransactionRequest>,
    ) -> Result<pb::EndTransactionResponse, Failure> {
        let caller = self.caller(&request, "EndTransaction").await?;
        caller.require(Permission::Publish)?;
        let r = request.into_inner();
        let topic = caller.resource(r.topic.as_ref(), "topic")?.to_string();
        let commit = match pb::TransactionResolution::try_from(r.resolution) {
            Ok(pb::TransactionResolution::Commit) => true,
            Ok(pb::TransactionResolution::Rollback) => false,
            _ => {
                return Err(Failure::bad_request(
                    "resolution must be COMMIT or ROLLBACK",
                ));
            }
        };
        // A topic that is missing or takes no transactions is said so, not
        // taken for a bad transaction id.
        let info = self.engine.topic_info(&caller.tenant, &topic)?;
        if info.message_type != strata_engine::MessageType::Transaction {
            return Err(Failure::new(
                Code::MessagePropertyConflictWithType,
                format!(
                    "topic {topic} is a {} topic: it has no transactions to end",
                    info.message_type
                ),
            ));
        }
        // Some clients leave the message id out; one that names it must
        // name the transaction's.
        let ended = if r.message_id.is_empty() {
            self.engine
                .end_transaction(&caller.tenant, &topic, &r.transaction_id, commit)
                .await
        } else {
            self.engine
                .end_transaction_of(
                    &caller.tenant,
                    &topic,
                    &r.transaction_id,
                    &r.message_id,
                    commit,
                )
                .await
        };
        ended.map_err(|e| match e {
            EngineError::InvalidTransaction(m) => Failure::new(Code::InvalidTransactionId, m),
            other => other.into(),
        })?;
        Ok(pb::EndTransactionResponse { status: Some(ok()) })
    }
}
