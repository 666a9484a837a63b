//! Who is calling: RocketMQ 5 authentication from gRPC metadata, the tenant
//! a request acts on, quotas, and request metering.
//!
//! Clients sign `x-mq-date-time` with HMAC-SHA1 in the `authorization`
//! header (`MQv2-HMAC-SHA1 Credential=<AK>, SignedHeaders=x-mq-date-time,
//! Signature=<hex>`); `Bearer <AK>:<SK>` is accepted too. A namespace (the
//! `x-mq-namespace` header or a resource's `resource_namespace`) must be
//! the key's tenant; a service admin may name any existing tenant.

use std::sync::Arc;

use strata_engine::Engine;
use strata_tenancy::{
    Credentials, DATE_HEADER, Permission, Principal, Quotas, Rate, RateLimiter, Role,
};
use tonic::metadata::MetadataMap;

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
    /// Connected producers, for transaction check-backs.
    pub producers: Arc<crate::grpc::txn::Producers>,
    /// Receives in progress by client, for NotifyClientTermination.
    pub clients: Arc<crate::grpc::clients::Clients>,
}

/// An authenticated caller and the tenant the request acts on.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub tenant: String,
    /// `None` for service admins, who are not limited.
    pub quotas: Option<Quotas>,
}

fn header<'a>(metadata: &'a MetadataMap, name: &str) -> Option<&'a str> {
    metadata.get(name).and_then(|v| v.to_str().ok())
}

impl GrpcState {
    /// Authenticates the request, resolves its tenant, takes one request
    /// token and meters the call as `rpc`.
    pub async fn caller(&self, metadata: &MetadataMap, rpc: &str) -> Result<Caller, Failure> {
        let authorization = header(metadata, "authorization");
        let principal = match (authorization, self.anonymous) {
            (None, true) => Principal {
                access_key: "anonymous".into(),
                tenant: strata_tenancy::DEFAULT_TENANT.into(),
                role: Role::Admin,
            },
            _ => {
                self.credentials
                    .authenticate(
                        authorization,
                        header(metadata, DATE_HEADER),
                        self.max_clock_skew_ms,
                    )
                    .await?
            }
        };
        let tenant = match header(metadata, NAMESPACE_HEADER).filter(|n| !n.is_empty()) {
            None => principal.tenant.clone(),
            Some(n) => self.namespace_tenant(&principal, n).await?,
        };
        let quotas = if principal.role == Role::Admin {
            None
        } else {
            Some(self.credentials.quotas_for(&principal.tenant).await?)
        };
        if let Some(q) = &quotas {
            self.limiter
                .acquire(&principal.tenant, Rate::Requests, q, 1)
                .await?;
        }
        self.engine.meter().add_request(&principal.tenant, rpc);
        Ok(Caller {
            principal,
            tenant,
            quotas,
        })
    }

    /// The tenant a namespace names, if the caller may act on it.
    async fn namespace_tenant(&self, p: &Principal, namespace: &str) -> Result<String, Failure> {
        if namespace == p.tenant {
            return Ok(namespace.to_string());
        }
        if p.role == Role::Admin {
            self.credentials.get_tenant(namespace).await?;
            return Ok(namespace.to_string());
        }
        Err(Failure::new(
            Code::Forbidden,
            format!("namespace {namespace:?} is not the tenant of this access key"),
        ))
    }
}

impl Caller {
    /// Fails with FORBIDDEN unless the caller's role allows `p`.
    pub fn require(&self, p: Permission) -> Result<(), Failure> {
        Ok(self.principal.require(p)?)
    }

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
        Ok(&r.name)
    }

    /// Takes `amount` from the caller's `rate` quota, waiting when the
    /// limiter throttles.
    pub async fn take(
        &self,
        limiter: &RateLimiter,
        rate: Rate,
        amount: u64,
    ) -> Result<(), Failure> {
        match &self.quotas {
            Some(q) => Ok(limiter
                .acquire(&self.principal.tenant, rate, q, amount)
                .await?),
            None => Ok(()),
        }
    }
}
