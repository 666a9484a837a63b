//! Who is calling ([`Gate::admit`]), which tenant the request acts on
//! ([`Gate::act_as`]), and what the caller may do and spend ([`Caller`]).
//!
//! Credentials are `Authorization: Bearer <access_key>:<secret_key>` or the
//! RocketMQ 5 scheme (`MQv2-HMAC-SHA1 Credential=<AK>,
//! SignedHeaders=x-mq-date-time, Signature=<hex>` with `x-mq-date-time`
//! within the allowed clock skew); each adapter finds them in its headers.

use strata_common::ErrorCode;
use strata_engine::Engine;
use strata_tenancy::{Credentials, Permission, Principal, Quotas, Rate, RateLimiter, Role};

use super::ServiceError;

/// The tenant anonymous requests act on, when anonymous access is enabled
/// for local development.
pub const ANONYMOUS_TENANT: &str = strata_tenancy::DEFAULT_TENANT;

/// What admission needs, borrowed from an adapter's state.
#[derive(Debug, Clone, Copy)]
pub struct Gate<'a> {
    pub engine: &'a Engine,
    pub credentials: &'a Credentials,
    pub limiter: &'a RateLimiter,
    /// Largest accepted difference between `x-mq-date-time` and our clock.
    pub max_clock_skew_ms: i64,
    /// Requests without credentials act as a service admin of
    /// [`ANONYMOUS_TENANT`] (local development only).
    pub anonymous: bool,
}

/// An authenticated principal that paid its request token.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub principal: Principal,
    /// `None` for service admins, who are not limited.
    pub quotas: Option<Quotas>,
}

/// An admitted caller and the tenant the request acts on.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The caller's own tenant, or for a service admin the tenant it named.
    pub tenant: String,
    /// The caller's quotas; `None` for service admins, who are not limited.
    pub quotas: Option<Quotas>,
}

impl Gate<'_> {
    /// Authenticates, looks up the tenant's quotas, takes one request token
    /// and meters the request as `operation`, billed to the credential's
    /// tenant. A request refused here is not billed.
    pub async fn admit(
        &self,
        authorization: Option<&str>,
        date_time: Option<&str>,
        operation: &str,
    ) -> Result<Admitted, ServiceError> {
        let principal = self.identify(authorization, date_time).await?;
        self.admit_identified(principal, operation).await
    }

    /// [`Gate::admit`] for a principal already identified (by the cluster
    /// router, which authenticated the request to find its tenant).
    pub async fn admit_identified(
        &self,
        principal: Principal,
        operation: &str,
    ) -> Result<Admitted, ServiceError> {
        // Service admins operate the service and are not limited.
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
        self.engine
            .meter()
            .add_request(&principal.tenant, operation);
        Ok(Admitted { principal, quotas })
    }

    /// Who the credentials belong to, with nothing taken or metered (a
    /// cluster node forwarding the request to the tenant's node uses it;
    /// that node admits it).
    pub async fn identify(
        &self,
        authorization: Option<&str>,
        date_time: Option<&str>,
    ) -> Result<Principal, ServiceError> {
        Ok(match (authorization, self.anonymous) {
            (None, true) => Principal {
                access_key: "anonymous".into(),
                tenant: ANONYMOUS_TENANT.into(),
                role: Role::Admin,
            },
            _ => {
                self.credentials
                    .authenticate(authorization, date_time, self.max_clock_skew_ms)
                    .await?
            }
        })
    }

    /// Whether `principal` may act on `tenant`, as [`Gate::act_as`] decides:
    /// its own, or, for a service admin, any tenant that exists.
    pub async fn may_act_as(&self, principal: &Principal, tenant: &str) -> bool {
        tenant == principal.tenant
            || (principal.role == Role::Admin && self.credentials.get_tenant(tenant).await.is_ok())
    }

    /// The caller acting on `asked` (its own tenant when `None`).
    /// Only a service admin may name another tenant, and it must exist.
    /// `named_by` says where the name came from, for the refusal.
    pub async fn act_as(
        &self,
        admitted: Admitted,
        asked: Option<&str>,
        named_by: &str,
    ) -> Result<Caller, ServiceError> {
        let Admitted { principal, quotas } = admitted;
        let tenant = match asked {
            None => principal.tenant.clone(),
            Some(t) if t == principal.tenant => principal.tenant.clone(),
            Some(t) if principal.role == Role::Admin => {
                // Otherwise an admin would create topics and groups under a
                // name no tenant owns.
                self.credentials.get_tenant(t).await?;
                t.to_string()
            }
            // The refusal does not repeat the name: whether such a tenant
            // exists is none of this caller's business.
            Some(_) => {
                return Err(ServiceError::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "{named_by} names a tenant other than this access key's; only a service admin may act on another tenant"
                    ),
                ));
            }
        };
        Ok(Caller {
            principal,
            tenant,
            quotas,
        })
    }
}

/// What one delivering request may return ([`Caller::take_consume`]): the
/// consume buckets' levels once its first message was taken. Concurrent
/// requests of one tenant each see the same levels, so together they may
/// pass them by their number; the debt is waited off by the next ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumeBudget {
    /// Most messages (at least one); `None` when the plan sets no limit.
    pub messages: Option<usize>,
    /// Most body bytes: their total within it, or just one message.
    /// `None` when the plan sets no limit.
    pub bytes: Option<u64>,
}

impl ConsumeBudget {
    /// No limit: a caller without quotas (a service admin), or a plan
    /// without consume rates.
    pub const UNLIMITED: Self = Self {
        messages: None,
        bytes: None,
    };

    /// `asked`, or fewer when the tenant's message rate holds fewer.
    pub fn messages(&self, asked: usize) -> usize {
        self.messages.map_or(asked, |m| asked.min(m))
    }
}

impl Caller {
    /// Fails with PERMISSION_DENIED unless the caller's role allows `p`.
    pub fn require(&self, p: Permission) -> Result<&Self, ServiceError> {
        self.principal.require(p)?;
        Ok(self)
    }

    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }

    /// Takes `amount` from the caller's `rate` quota, waiting when the
    /// limiter throttles, or TOO_MANY_REQUESTS with a retry hint (nothing
    /// taken).
    pub async fn take(
        &self,
        limiter: &RateLimiter,
        rate: Rate,
        amount: u64,
    ) -> Result<(), ServiceError> {
        self.take_all(limiter, &[(rate, amount)]).await
    }

    /// [`Caller::take`] for several rates: all are taken or none.
    pub async fn take_all(
        &self,
        limiter: &RateLimiter,
        wants: &[(Rate, u64)],
    ) -> Result<(), ServiceError> {
        match &self.quotas {
            Some(q) => Ok(limiter
                .acquire_all(&self.principal.tenant, q, wants)
                .await?),
            None => Ok(()),
        }
    }

    /// Charges a cost known only afterwards (e.g. bytes read); the caller's
    /// next requests wait it off.
    pub fn charge(&self, limiter: &RateLimiter, rate: Rate, amount: u64) {
        if let Some(q) = &self.quotas {
            limiter.charge(&self.principal.tenant, rate, q, amount);
        }
    }

    /// Admits a request that delivers messages (a read, a receive, a pull,
    /// a lookup): one message is taken up front, which keeps an exhausted
    /// consumer out, and the consume-bytes debt earlier deliveries left
    /// must be paid off. The answer is what the request may then deliver:
    /// what the buckets hold, so that one large read does not run the
    /// tenant into a debt it waits off for seconds or minutes. What it
    /// delivers is charged afterwards ([`Caller::charge_consumed`]).
    pub async fn take_consume(&self, limiter: &RateLimiter) -> Result<ConsumeBudget, ServiceError> {
        self.take_all(
            limiter,
            &[(Rate::ConsumeMessages, 1), (Rate::ConsumeBytes, 0)],
        )
        .await?;
        let Some(q) = &self.quotas else {
            return Ok(ConsumeBudget::UNLIMITED);
        };
        let tenant = &self.principal.tenant;
        Ok(ConsumeBudget {
            messages: limiter
                .available(tenant, Rate::ConsumeMessages, q)
                .map(|more| {
                    usize::try_from(more)
                        .unwrap_or(usize::MAX)
                        .saturating_add(1)
                }),
            bytes: limiter.available(tenant, Rate::ConsumeBytes, q),
        })
    }

    /// Charges `messages` delivered (beyond the one [`Caller::take_consume`]
    /// took) and their body `bytes`.
    pub fn charge_consumed(&self, limiter: &RateLimiter, messages: u64, bytes: u64) {
        self.charge(limiter, Rate::ConsumeMessages, messages.saturating_sub(1));
        self.charge(limiter, Rate::ConsumeBytes, bytes);
    }

    /// Fails with QUOTA_EXCEEDED once the tenant stores more than its plan's
    /// `max_stored_bytes` (as of the last storage sample).
    pub fn within_stored_bytes(&self, stored: impl FnOnce() -> u64) -> Result<(), ServiceError> {
        match self
            .quotas
            .as_ref()
            .and_then(|q| q.over_stored_bytes(&self.principal.tenant, stored))
        {
            Some(why) => Err(ServiceError::new(ErrorCode::QuotaExceeded, why)),
            None => Ok(()),
        }
    }

    /// Fails with QUOTA_EXCEEDED when `used + adding` passes `limit` (0 = none).
    pub fn within(
        &self,
        what: &str,
        limit: impl Fn(&Quotas) -> u64,
        used: u64,
        adding: u64,
    ) -> Result<(), ServiceError> {
        let Some(q) = &self.quotas else {
            return Ok(());
        };
        let limit = limit(q);
        if limit > 0 && used.saturating_add(adding) > limit {
            return Err(ServiceError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "tenant {} may have at most {limit} {what}; it has {used} and this would add {adding}",
                    self.principal.tenant
                ),
            ));
        }
        Ok(())
    }
}
