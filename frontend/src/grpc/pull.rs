//! PullMessage: messages of one queue from an offset, then the next offset,
//! then the status, each a response of the stream.
//!
//! A catching-up reader pulls up to `limits.max_read_messages` at a time.
//! Converting them to protobuf (an MD5 of every body among it) and encoding
//! them is CPU work that must not take the async workers from producers,
//! so [`PullRoute`] serves the RPC in place of the generated server: a
//! large pull's responses are converted and encoded on the readers'
//! bounded pool ([`crate::pipeline::reply`]), and the stream only copies
//! ready bytes into its frames ([`PullCodec`]).

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use strata_common::StoredMessage;
use strata_engine::{MessageType, ReadLimits};
use strata_tenancy::Permission;
use tonic::body::Body;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;

use crate::grpc::caller::GrpcState;
use crate::grpc::consume::{polling_timeout, tag_filter, to_pb};
use crate::grpc::failure::{Failure, ok};
use crate::grpc::offsets::{offset_arg, offset_out, queue_of};
use crate::grpc::pb::{self, pull_message_response::Content};

/// Messages per pull when the client does not say. A client may ask for
/// more, up to `limits.max_read_messages` (and `max_read_bytes`).
const DEFAULT_PULL_BATCH: usize = 32;

/// The RPC's path, which [`PullRoute`] serves.
pub const PULL_PATH: &str = "/apache.rocketmq.v2.MessagingService/PullMessage";

/// A pull's read, with what its responses need.
pub struct Pulled {
    topic: String,
    queue: u32,
    messages: Vec<StoredMessage>,
    next_offset: u64,
    message_type: MessageType,
    store_host: String,
    /// `Message::approx_size` over the messages: what encoding costs.
    size: usize,
}

impl GrpcState {
    /// Authenticates, reads and charges the consume quotas for a pull.
    pub(crate) async fn pull_read(
        &self,
        request: Request<pb::PullMessageRequest>,
    ) -> Result<Pulled, Failure> {
        let caller = self.caller(&request, "PullMessage").await?;
        caller.require(Permission::Consume)?;
        let r = request.into_inner();
        // A pull reads by offset: its group need not exist until it commits
        // offsets (readers such as the load tester never do). Its name must
        // still be one a group can have.
        caller.resource(r.group.as_ref(), "consumer group")?;
        let (topic, queue) = queue_of(&caller, r.message_queue.as_ref())?;
        let filter = tag_filter(r.filter_expression.as_ref())?;
        // The engine bounds a read by `max_read_messages` and `max_read_bytes`.
        let batch = usize::try_from(r.batch_size)
            .ok()
            .filter(|b| *b > 0)
            .unwrap_or(DEFAULT_PULL_BATCH);
        let wait = polling_timeout(r.long_polling_timeout.as_ref(), Duration::ZERO)? * 4 / 5;
        let budget = caller.take_consume(&self.limiter).await?;
        let info = self.engine.topic_info(&caller.tenant, &topic)?;
        // The engine keeps and meters only what passes the filter: that is
        // what is delivered, charged and encoded.
        let limits = ReadLimits {
            max_messages: batch,
            max_returned: budget.messages,
            max_body_bytes: budget.bytes,
            filter: &filter,
        };
        let offset = offset_arg(r.offset)?;
        let read = self
            .engine
            .read_within(&caller.tenant, &topic, queue, offset, wait, limits)
            .await?;
        let messages = read.messages;
        let (bodies, size) = crate::pipeline::reply::sizes(&messages);
        caller.charge_consumed(&self.limiter, messages.len() as u64, bodies);
        Ok(Pulled {
            topic,
            queue,
            messages,
            next_offset: read.next_offset,
            message_type: info.message_type,
            store_host: self.engine.config().node_id.clone(),
            size,
        })
    }

    /// The pull's responses, encoded: in place when small, on the readers'
    /// pool when large.
    async fn pull_encoded(&self, request: Request<pb::PullMessageRequest>) -> Vec<Bytes> {
        let encoded = match self.pull_read(request).await {
            Ok(pulled) => {
                let size = pulled.size;
                crate::pipeline::reply::encode(&self.engine, size, move || {
                    encode(&pulled.responses())
                })
                .await
                .map_err(Failure::from)
                .and_then(|encoded| encoded)
            }
            Err(f) => Err(f),
        };
        encoded.unwrap_or_else(|f| {
            tracing::debug!(rpc = "PullMessage", code = ?f.code, message = %f.message, "request refused");
            // A status alone encodes into a few bytes; should even that
            // fail, the stream ends without one and the client sees it.
            encode(&[failed(&f)]).unwrap_or_default()
        })
    }
}

impl Pulled {
    /// The messages, the next offset, the status.
    pub fn responses(self) -> Vec<pb::PullMessageResponse> {
        let resource = pb::Resource {
            resource_namespace: String::new(),
            name: self.topic,
        };
        let (queue, message_type, store_host) = (self.queue, self.message_type, self.store_host);
        let mut out: Vec<pb::PullMessageResponse> = self
            .messages
            .into_iter()
            .map(|m| {
                let popped = strata_engine::Popped {
                    queue,
                    attempt: 1,
                    handle: String::new(),
                    visible_ms: 0,
                    message: m,
                };
                let mut message = to_pb(
                    popped,
                    resource.clone(),
                    message_type,
                    Duration::ZERO,
                    &store_host,
                );
                if let Some(sys) = message.system_properties.as_mut() {
                    // Pulled messages have no receipt handle or invisibility.
                    sys.receipt_handle = None;
                    sys.invisible_duration = None;
                }
                pb::PullMessageResponse {
                    content: Some(Content::Message(message)),
                }
            })
            .collect();
        out.push(pb::PullMessageResponse {
            content: Some(Content::NextOffset(offset_out(self.next_offset))),
        });
        out.push(pb::PullMessageResponse {
            content: Some(Content::Status(ok())),
        });
        out
    }
}

/// The one response of a refused pull.
pub fn failed(f: &Failure) -> pb::PullMessageResponse {
    pb::PullMessageResponse {
        content: Some(Content::Status(f.status())),
    }
}

/// Each response's protobuf encoding, split from one buffer.
fn encode(responses: &[pb::PullMessageResponse]) -> Result<Vec<Bytes>, Failure> {
    let total = responses.iter().map(|r| r.encoded_len()).sum();
    let mut buf = BytesMut::with_capacity(total);
    responses
        .iter()
        .map(|r| {
            // Fails only without room, and a BytesMut grows as needed.
            r.encode(&mut buf).map_err(|e| {
                Failure::new(
                    pb::Code::InternalServerError,
                    format!("encoding a response: {e}"),
                )
            })?;
            Ok(buf.split().freeze())
        })
        .collect()
}

/// Decodes PullMessage requests with prost; sends responses that are
/// already encoded.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullCodec;

/// Writes an encoded response as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodedEncoder;

impl Encoder for EncodedEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Codec for PullCodec {
    type Encode = Bytes;
    type Decode = pb::PullMessageRequest;
    type Encoder = EncodedEncoder;
    type Decoder = ProstDecoder<pb::PullMessageRequest>;

    fn encoder(&mut self) -> EncodedEncoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// The RPC as tonic calls it, over [`PullCodec`].
struct PullService(GrpcState);

type EncodedStream = tokio_stream::Iter<
    std::iter::Map<std::vec::IntoIter<Bytes>, fn(Bytes) -> Result<Bytes, Status>>,
>;

impl ServerStreamingService<pb::PullMessageRequest> for PullService {
    type Response = Bytes;
    type ResponseStream = EncodedStream;
    type Future = BoxFuture<Response<EncodedStream>, Status>;

    fn call(&mut self, request: Request<pb::PullMessageRequest>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let encoded = state.pull_encoded(request).await;
            let ok: fn(Bytes) -> Result<Bytes, Status> = Ok;
            Ok(Response::new(tokio_stream::iter(
                encoded.into_iter().map(ok),
            )))
        })
    }
}

/// Wraps the generated MessagingService server: PullMessage is served
/// here, every other RPC passes on.
#[derive(Clone)]
pub struct PullRoute<S> {
    inner: S,
    state: GrpcState,
    max_message_bytes: usize,
}

impl<S> PullRoute<S> {
    /// `max_message_bytes` bounds a decoded request and an encoded response,
    /// as it does for the other RPCs.
    pub fn new(inner: S, state: GrpcState, max_message_bytes: usize) -> Self {
        PullRoute {
            inner,
            state,
            max_message_bytes,
        }
    }
}

impl<S: NamedService> NamedService for PullRoute<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for PullRoute<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != PULL_PATH {
            return Box::pin(self.inner.call(request));
        }
        let service = PullService(self.state.clone());
        // As the generated server is configured in `grpc::serve`: these
        // sizes, no compression. A setting added there belongs here too.
        let max = Some(self.max_message_bytes);
        Box::pin(async move {
            let mut grpc = Grpc::new(PullCodec).apply_max_message_size_config(max, max);
            Ok(grpc.server_streaming(service, request).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_responses_decode_to_what_was_encoded() {
        let responses = vec![
            pb::PullMessageResponse {
                content: Some(Content::NextOffset(42)),
            },
            failed(&Failure::bad_request("no")),
            pb::PullMessageResponse { content: None },
        ];
        let encoded = encode(&responses).unwrap();
        let decoded: Vec<pb::PullMessageResponse> = encoded
            .iter()
            .map(|b| pb::PullMessageResponse::decode(b.clone()).unwrap())
            .collect();
        assert_eq!(decoded, responses);
    }
}
