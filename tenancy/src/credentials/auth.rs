//! Authenticating a request's credentials.

use std::sync::Arc;

use super::Credentials;
use super::cache::Entry;
use super::keys::parse_role;
use super::outage::{Refreshed, STALE_LIMIT_MS};
use crate::error::AuthError;
use crate::principal::Principal;
use crate::signature::{
    Authorization, DATE_HEADER, check_skew, parse_authorization, parse_date_time, verify,
};
use strata_metadata::{CatalogError, MetaError};

impl Credentials {
    /// Checks a request's `authorization` header (and, for the RocketMQ
    /// scheme, its `x-mq-date-time` header within `max_skew_ms` of now) and
    /// returns who sent it.
    ///
    /// The order of checks keeps errors from revealing more than the caller
    /// already knows: format and clock checks first (they need no key),
    /// then the secret, and [`AuthError::Revoked`] only once the secret
    /// matched.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        date_time: Option<&str>,
        max_skew_ms: i64,
    ) -> Result<Principal, AuthError> {
        let header = authorization
            .filter(|h| !h.trim().is_empty())
            .ok_or(AuthError::MissingCredentials)?;
        match parse_authorization(header)? {
            Authorization::Bearer { access_key, secret } => {
                let entry = self
                    .lookup_matching(&access_key, |e| e.secret.ct_eq(secret.expose()))
                    .await?;
                finish(access_key, &entry)
            }
            Authorization::Hmac {
                access_key,
                signed_headers,
                signature,
            } => {
                if signed_headers != [DATE_HEADER] {
                    return Err(AuthError::UnsupportedSignedHeaders(signed_headers));
                }
                let date_time = date_time.ok_or(AuthError::MissingDateHeader)?;
                let date_ms = parse_date_time(date_time)?;
                check_skew(date_ms, self.now_ms(), max_skew_ms)?;
                let entry = self
                    .lookup_matching(&access_key, |e| verify(&e.secret, date_time, &signature))
                    .await?;
                finish(access_key, &entry)
            }
        }
    }

    /// The opened key if `matches` (the request's secret or signature)
    /// holds for it. A cached key that does not match is read again once
    /// it is [`RELOAD_AFTER_MS`] old: its secret may have been rotated on
    /// another node, and the new one would otherwise be refused until the
    /// cache entry expired. Wrong secrets thereby cost at most one catalog
    /// read per key per that time.
    async fn lookup_matching(
        &self,
        access_key: &str,
        matches: impl Fn(&Entry) -> bool,
    ) -> Result<Arc<Entry>, AuthError> {
        let entry = self.lookup(access_key).await?;
        if matches(&entry) {
            return Ok(entry);
        }
        let now = self.now_ms();
        if now.saturating_sub(entry.loaded_ms) < RELOAD_AFTER_MS {
            return Err(AuthError::BadSignature);
        }
        // A secret that matches no held key may be one rotated elsewhere:
        // while the store does not answer, say so rather than "wrong".
        if self.inner.outage.ongoing(now) {
            return Err(AuthError::StoreUnavailable);
        }
        let entry = match self.refresh(access_key).await {
            Refreshed::Answered(entry) => entry?,
            Refreshed::Unavailable => return Err(AuthError::StoreUnavailable),
        };
        if matches(&entry) {
            Ok(entry)
        } else {
            Err(AuthError::BadSignature)
        }
    }

    /// The opened key, from the cache or else from the catalog; an expired
    /// one read within [`STALE_LIMIT_MS`] while the catalog does not answer
    /// (see the [module docs](super)).
    async fn lookup(&self, access_key: &str) -> Result<Arc<Entry>, AuthError> {
        let now = self.now_ms();
        if let Some(entry) = self.inner.cache.get_fresh(access_key, now) {
            return Ok(entry);
        }
        let Some(stale) = self.inner.cache.get_within(access_key, now, STALE_LIMIT_MS) else {
            return self.load(access_key).await;
        };
        if self.inner.outage.ongoing(now) {
            return Ok(stale);
        }
        match self.refresh(access_key).await {
            Refreshed::Answered(entry) => entry,
            Refreshed::Unavailable => Ok(stale),
        }
    }

    /// [`Credentials::load`], bounded by the outage rules.
    async fn refresh(&self, access_key: &str) -> Refreshed<Arc<Entry>, AuthError> {
        let clock = self.inner.clock.clone();
        self.inner
            .outage
            .refresh(clock.as_ref(), self.load(access_key), |e| {
                matches!(e, AuthError::StoreUnavailable)
            })
            .await
    }

    /// The opened key from the catalog, cached.
    async fn load(&self, access_key: &str) -> Result<Arc<Entry>, AuthError> {
        let now = self.now_ms();
        // '/' cannot occur in a key we issued, and the catalog would refuse
        // it as an invalid request; it is just an unknown key.
        if access_key.contains('/') {
            return Err(AuthError::UnknownKey);
        }
        let record = self
            .inner
            .catalog
            .get_access_key(access_key)
            .await
            .map_err(|e| match e {
                CatalogError::Meta(MetaError::Backend(detail)) => {
                    tracing::warn!(error = %detail, "reading an access key failed");
                    AuthError::StoreUnavailable
                }
                other => AuthError::Store(other.to_string()),
            })?;
        let Some(record) = record else {
            self.inner.cache.remove(access_key);
            return Err(AuthError::UnknownKey);
        };
        let role = parse_role(&record).map_err(|e| AuthError::Store(e.to_string()))?;
        let secret = self
            .inner
            .master
            .open(&record.sealed_secret, access_key)
            .map_err(|e| AuthError::Store(e.to_string()))?;
        Ok(self.inner.cache.put(
            access_key,
            Entry {
                tenant: record.tenant,
                role,
                secret,
                revoked: record.revoked_ms.is_some(),
                updated_ms: record.updated_ms,
                loaded_ms: now,
            },
        ))
    }
}

/// How old a cached key must be before a request whose secret does not
/// match it makes it be read again (see `lookup_matching`).
pub const RELOAD_AFTER_MS: i64 = 1000;

fn finish(access_key: String, entry: &Entry) -> Result<Principal, AuthError> {
    if entry.revoked {
        return Err(AuthError::Revoked);
    }
    Ok(Principal {
        access_key,
        tenant: entry.tenant.clone(),
        role: entry.role,
    })
}
