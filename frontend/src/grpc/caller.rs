//! Who is calling: the pipeline's admission ([`Gate`]) fed from gRPC
//! metadata, and the namespace a request acts in.
//!
//! Clients sign `x-mq-date-time` with HMAC-SHA1 in the `authorization`
//! header (`MQv2-HMAC-SHA1 Credential=<AK>, SignedHeaders=x-mq-date-time,
//! Signature=<hex>`); `Bearer <AK>:<SK>` is accepted too. The request acts
//! in the `x-mq-namespace` header's tenant (the key's own by default): only
//! a service admin may name another, existing tenant there. Every
//! resource's `resource_namespace`, when set, must be that same tenant.

use std::sync::Arc;

use strata_common::names;
use strata_engine::Engine;
use strata_tenancy::{Credentials, DATE_HEADER, Principal, RateLimiter};
use tonic::metadata::MetadataMap;

pub use crate::pipeline::Caller;
use crate::pipeline::Gate;

use crate::grpc::failure::Failure;
use crate::grpc::pb::{self, Code};

/// Header naming the namespace (tenant) a client works in.
pub const NAMESPACE_HEADER: &str = "x-mq-namespace";

/// Everything the service needs besides the request.
#[derive(Debug, Clone)]
pub struct GrpcState {
    pub engine: Arc<Engine>,
    pub credentials: Credentials,
    pub limiter: Arc<RateLimiter>,
    /// Largest accepted difference between `x-mq-date-time` and our clock.
    pub max_clock_skew_ms: i64,
    /// Requests without credentials act as a service admin of tenant
    /// "default" (local development only).
    pub anonymous: bool,
    /// The address clients are told to connect to (route answers).
    pub advertised: (String, u16),
    /// What route answers name for every queue instead of the serving
    /// node (`grpc.route_addr`: a load balancer), if set.
    pub route_endpoint: Option<(String, u16)>,
    /// Connected producers, for transaction check-backs.
    pub producers: Arc<crate::grpc::producers::Producers>,
    /// Receives in progress by client, for NotifyClientTermination.
    pub clients: Arc<crate::grpc::clients::Clients>,
    /// In cluster mode: where tenants are served (route answers).
    pub cluster: Option<Arc<crate::cluster::balance::Balancer>>,
}

fn header<'a>(metadata: &'a MetadataMap, name: &str) -> Option<&'a str> {
    metadata.get(name).and_then(|v| v.to_str().ok())
}

impl GrpcState {
    /// The pipeline's admission stage over this server's credentials.
    pub fn gate(&self) -> Gate<'_> {
        Gate {
            engine: &self.engine,
            credentials: &self.credentials,
            limiter: &self.limiter,
            max_clock_skew_ms: self.max_clock_skew_ms,
            anonymous: self.anonymous,
        }
    }

    /// Runs the pipeline's admission for the request (metered as `rpc`) and
    /// resolves the namespace it acts in. A request the cluster router
    /// already authenticated carries its principal (an extension, which no
    /// client can set) and is not authenticated again.
    pub async fn caller<T>(
        &self,
        request: &tonic::Request<T>,
        rpc: &str,
    ) -> Result<Caller, Failure> {
        let gate = self.gate();
        let metadata = request.metadata();
        let admitted = match request.extensions().get::<Principal>() {
            Some(principal) => gate.admit_identified(principal.clone(), rpc).await?,
            None => {
                gate.admit(
                    header(metadata, "authorization"),
                    header(metadata, DATE_HEADER),
                    rpc,
                )
                .await?
            }
        };
        // RocketMQ clients send an empty namespace when they have none.
        let namespace = header(metadata, NAMESPACE_HEADER).filter(|n| !n.is_empty());
        Ok(gate
            .act_as(
                admitted,
                namespace,
                &format!("the {NAMESPACE_HEADER} header"),
            )
            .await?)
    }
}

impl Caller {
    /// The name of `resource` in the caller's tenant; its namespace, when
    /// set, must be that tenant.
    pub fn resource<'a>(
        &self,
        resource: Option<&'a pb::Resource>,
        what: &str,
    ) -> Result<&'a str, Failure> {
        let r = resource
            .filter(|r| !r.name.is_empty())
            .ok_or_else(|| Failure::bad_request(format!("the request names no {what}")))?;
        if !r.resource_namespace.is_empty() && r.resource_namespace != self.tenant {
            return Err(Failure::new(
                Code::Forbidden,
                format!(
                    "{what} namespace {:?} is not the namespace this request acts in",
                    r.resource_namespace
                ),
            ));
        }
        // A name that cannot exist is an illegal name, not a missing one.
        let illegal = if what == "topic" {
            names::validate_topic(&r.name).map_err(|e| (Code::IllegalTopic, e))
        } else {
            names::validate_group(&r.name).map_err(|e| (Code::IllegalConsumerGroup, e))
        };
        if let Err((code, e)) = illegal {
            return Err(Failure::new(code, e.to_string()));
        }
        Ok(&r.name)
    }
}
