//! Cluster mode over gRPC: an RPC for a tenant served by another node is
//! forwarded there whole (headers, body, and the streamed answer), so a
//! client whose route went stale (its tenant moved) keeps working. Route
//! and assignment queries, heartbeats and Telemetry streams are answered
//! where they arrive (the first two name the tenant's node; the others
//! belong to the connection). Like HTTP forwarding, the forwarding node
//! only identifies the caller; the tenant's node admits it; a forwarded
//! RPC is never forwarded again. An RPC served where it arrives is
//! authenticated once: the principal found here goes on to admission.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use strata_tenancy::{DATE_HEADER, Principal};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};

use crate::cluster::balance::Route;
use crate::cluster::forward::FORWARDED_HEADER;
use crate::grpc::caller::{GrpcState, NAMESPACE_HEADER};

/// RPCs answered by whichever node receives them.
const ANSWERED_HERE: [&str; 4] = ["QueryRoute", "QueryAssignment", "Heartbeat", "Telemetry"];

/// Wraps the MessagingService: forwards, or passes the RPC on.
#[derive(Clone)]
pub struct Forwarding<S> {
    inner: S,
    router: Arc<Router>,
}

impl<S> Forwarding<S> {
    pub fn new(inner: S, state: GrpcState) -> Self {
        Forwarding {
            inner,
            router: Arc::new(Router {
                state,
                channels: Mutex::default(),
            }),
        }
    }
}

impl<S: NamedService> NamedService for Forwarding<S> {
    const NAME: &'static str = S::NAME;
}

/// Decides where RPCs go and keeps a channel per node.
struct Router {
    state: GrpcState,
    channels: Mutex<HashMap<String, Channel>>,
}

/// What routing needs of a request, owned (the body is not `Sync`).
struct Asked {
    rpc: String,
    authorization: Option<String>,
    date_time: Option<String>,
    namespace: Option<String>,
    forwarded: bool,
}

impl Asked {
    fn of(request: &http::Request<Body>) -> Asked {
        let headers = request.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Asked {
            rpc: request
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            authorization: header("authorization"),
            date_time: header(DATE_HEADER),
            // RocketMQ clients send an empty namespace when they have none.
            namespace: header(NAMESPACE_HEADER).filter(|n| !n.is_empty()),
            forwarded: headers.contains_key(FORWARDED_HEADER),
        }
    }
}

/// Where an RPC goes.
enum Target {
    /// Served here; with the caller when it was identified on the way.
    Here(Option<Principal>),
    There {
        node: String,
        channel: Channel,
    },
    Refused(tonic::Status),
}

impl<S> Service<http::Request<Body>> for Forwarding<S>
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

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was made ready serves this call (tower's rule).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        if self.router.state.cluster.is_none() {
            return Box::pin(inner.call(request));
        }
        let router = self.router.clone();
        let asked = Asked::of(&request);
        Box::pin(async move {
            match router.target(asked).await {
                Target::Here(principal) => {
                    // Authenticated once: admission takes the principal.
                    if let Some(p) = principal {
                        request.extensions_mut().insert(p);
                    }
                    inner.call(request).await
                }
                Target::Refused(status) => Ok(status.into_http()),
                Target::There { node, mut channel } => {
                    if let Ok(v) = http::HeaderValue::from_str(&router.node()) {
                        request.headers_mut().insert(FORWARDED_HEADER, v);
                    }
                    // A channel is a buffer: it takes a call once ready.
                    let exchange = async {
                        std::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
                        channel.call(request).await
                    };
                    // Given up if the node's heartbeat lapses meanwhile
                    // (paused, cut off), instead of waiting it out.
                    let lapsed = async {
                        match router.state.cluster.as_ref() {
                            Some(balancer) => balancer.until_not_live(&node).await,
                            None => std::future::pending().await,
                        }
                    };
                    let answer = tokio::select! {
                        answer = exchange => answer,
                        () = lapsed => {
                            return Ok(tonic::Status::unavailable(format!(
                                "node {node} stopped heartbeating while it had the call \
                                 (paused, cut off or stopped); {}",
                                crate::cluster::forward::MAY_HAVE_BEEN_DONE
                            ))
                            .into_http());
                        }
                    };
                    if answer.is_err() {
                        // The node may have stopped and its tenants moved:
                        // the retry is routed by the metadata store's
                        // placements now, not by the last pass's view.
                        router.refresh().await;
                    }
                    Ok(answer.unwrap_or_else(|e| {
                        tonic::Status::unavailable(format!(
                            "forwarding to node {node} failed: {e}; if it was sent, {}",
                            crate::cluster::forward::MAY_HAVE_BEEN_DONE
                        ))
                        .into_http()
                    }))
                }
            }
        })
    }
}

impl Router {
    fn node(&self) -> String {
        self.state
            .cluster
            .as_ref()
            .map(|b| b.node_id().to_string())
            .unwrap_or_default()
    }

    async fn refresh(&self) {
        if let Some(balancer) = self.state.cluster.as_ref()
            && let Err(e) = balancer.refresh_view().await
        {
            tracing::debug!(error = %e, "refreshing the routing view failed");
        }
    }

    async fn target(&self, asked: Asked) -> Target {
        let Some(balancer) = self.state.cluster.as_ref() else {
            return Target::Here(None);
        };
        if ANSWERED_HERE.contains(&asked.rpc.as_str()) {
            return Target::Here(None);
        }
        let identified = self
            .state
            .gate()
            .identify(asked.authorization.as_deref(), asked.date_time.as_deref())
            .await;
        let Ok(principal) = identified else {
            // The service answers with the refusal.
            return Target::Here(None);
        };
        let tenant = asked.namespace.unwrap_or_else(|| principal.tenant.clone());
        if !self.state.gate().may_act_as(&principal, &tenant).await {
            // Refused here, at once: routing first would tell the caller
            // whether the tenant exists and which node serves it.
            return Target::Here(Some(principal));
        }
        let route = if asked.forwarded {
            balancer.route(&tenant)
        } else {
            balancer.wait_placed(&tenant).await
        };
        match route {
            Route::Here => Target::Here(Some(principal)),
            Route::Node {
                node, grpc_addr, ..
            } if !asked.forwarded => match self.channel(&grpc_addr) {
                Ok(channel) => Target::There { node, channel },
                Err(e) => Target::Refused(tonic::Status::unavailable(format!(
                    "node {node} at {grpc_addr}: {e}"
                ))),
            },
            _ => Target::Refused(tonic::Status::unavailable(format!(
                "tenant {tenant} is moving between nodes (or not placed yet); retry in a moment"
            ))),
        }
    }

    /// A lazily connecting channel to `addr`, one per node address.
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let timeout = self
            .state
            .cluster
            .as_ref()
            .map(|b| b.forward_timeout())
            .unwrap_or_default();
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .timeout(timeout)
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}
