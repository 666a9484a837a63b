//! A receive's answer as a stream that hands back what it never sent.
//!
//! A receive commits its messages as in flight before answering. A client
//! that cancels after that commit but before the answer is written (a
//! deadline, a consumer shutting down) would otherwise leave them invisible
//! to the whole group for their invisible time, up to 12 hours. Messages
//! the stream still holds when the transport drops it go back to the group
//! at once, as a zero invisible time would. Once an item is taken by the
//! transport it counts as sent: the client may have it, and at-least-once
//! delivery then rests on its invisible time, as in RocketMQ.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use strata_engine::Engine;

use crate::grpc::pb::{self, receive_message_response::Content};

/// The answer's items in order; see the module docs.
pub struct ReceiveStream {
    items: VecDeque<pb::ReceiveMessageResponse>,
    owner: Option<Owner>,
}

/// Whose deliveries the messages are.
struct Owner {
    engine: Arc<Engine>,
    tenant: String,
    group: String,
}

impl ReceiveStream {
    pub fn new(
        items: Vec<pb::ReceiveMessageResponse>,
        engine: Arc<Engine>,
        tenant: &str,
        group: &str,
    ) -> Self {
        Self {
            items: items.into(),
            owner: Some(Owner {
                engine,
                tenant: tenant.to_string(),
                group: group.to_string(),
            }),
        }
    }
}

impl futures::Stream for ReceiveStream {
    type Item = Result<pb::ReceiveMessageResponse, tonic::Status>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.get_mut().items.pop_front().map(Ok))
    }
}

impl Drop for ReceiveStream {
    fn drop(&mut self) {
        let unsent: Vec<(String, String)> = self
            .items
            .drain(..)
            .filter_map(|item| match item.content {
                Some(Content::Message(m)) => {
                    Some((m.topic?.name, m.system_properties?.receipt_handle?))
                }
                _ => None,
            })
            .collect();
        let Some(owner) = self.owner.take() else {
            return;
        };
        if unsent.is_empty() {
            return;
        }
        // Dropped by the transport, inside the runtime; without one (a test
        // dropping it elsewhere) the invisible time still hands them back.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            for (topic, handle) in unsent {
                let handed_back = owner
                    .engine
                    .change_invisible(&owner.tenant, &owner.group, &topic, &handle, Duration::ZERO)
                    .await;
                match handed_back {
                    Ok(_) => tracing::debug!(
                        tenant = owner.tenant,
                        group = owner.group,
                        topic,
                        "an unsent message went back to its group"
                    ),
                    Err(e) => tracing::debug!(
                        tenant = owner.tenant,
                        group = owner.group,
                        topic,
                        error = %e,
                        "an unsent message stays invisible until its time ends"
                    ),
                }
            }
        });
    }
}
