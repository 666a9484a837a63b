//! `GET /v1/usage`: a tenant's metered usage (the bill), as JSON or CSV.
//!
//! A tenant admin sees its own tenant; a service admin sees any tenant
//! (`x-strata-tenant`) or all of them (`all_tenants=true`).

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, BTreeSet};
pub use strata_client::api::usage::{UsageParams, UsageReply, UsageRow};
use strata_common::usage::{Counter, HOUR_MS, UsageCounts};
use strata_tenancy::{Granularity, Permission, UsageBucket};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::Query;

/// Default range when `start` is absent: the last 24 hours.
const DEFAULT_RANGE_MS: i64 = 24 * HOUR_MS;

fn rfc3339(ms: i64) -> String {
    strata_common::rfc3339::format_ms(ms)
}

fn parse_time(name: &str, text: &str) -> ApiResult<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        if ms < 0 {
            return Err(ApiError::invalid(format!("{name} must not be before 1970")));
        }
        return Ok(ms);
    }
    strata_common::rfc3339::parse_ms(text).map_err(|e| {
        ApiError::invalid(format!(
            "{name} {text:?} is neither Unix milliseconds nor an RFC 3339 time: {e}"
        ))
    })
}

/// One life of a tenant's name, and the usage records that are its own.
#[derive(Debug, PartialEq)]
struct Life {
    tenant: String,
    /// When it was created.
    since: i64,
    /// When it was deleted, if it was.
    deleted_ms: Option<i64>,
    /// The last moment whose minute is its own: its deletion, or just
    /// before the minute a later tenant of the name was created when that
    /// is the deletion minute (the minute's record is the later tenant's,
    /// so it is billed once).
    until: Option<i64>,
}

/// The lives of every tenant, keyed by name and creation time, each with
/// its deletion time if it was deleted.
fn lives(all: BTreeMap<(String, i64), Option<i64>>) -> Vec<Life> {
    let mut out: Vec<Life> = Vec::with_capacity(all.len());
    for ((tenant, since), deleted_ms) in all {
        // The previous life of the same name ends before this one's first
        // minute if it was deleted within it.
        if let Some(previous) = out.last_mut()
            && previous.tenant == tenant
        {
            let first_minute = Granularity::Minute.floor(since);
            if previous.until.is_none_or(|u| u >= first_minute) {
                previous.until = Some(first_minute - 1);
            }
        }
        out.push(Life {
            tenant,
            since,
            deleted_ms,
            until: deleted_ms,
        });
    }
    out
}

/// Whose usage a row is: a tenant's name, and when it was deleted if it was.
#[derive(Debug, Clone, Copy)]
struct Whose<'a> {
    tenant: &'a str,
    deleted_ms: Option<i64>,
}

fn row(whose: Whose<'_>, start_ms: i64, c: &UsageCounts) -> UsageRow {
    UsageRow {
        tenant: whose.tenant.to_string(),
        tenant_deleted_ms: whose.deleted_ms,
        start: rfc3339(start_ms),
        start_ms,
        requests: c.requests.clone(),
        requests_total: c.requests_total(),
        published_messages: c.published_messages,
        published_bytes: c.published_bytes,
        delivered_messages: c.delivered_messages,
        delivered_bytes: c.delivered_bytes,
        redeliveries: c.redeliveries,
        hot_byte_seconds: c.hot_byte_seconds,
        cold_byte_seconds: c.cold_byte_seconds,
        hot_byte_hours: c.hot_byte_seconds as f64 / 3600.0,
        cold_byte_hours: c.cold_byte_seconds as f64 / 3600.0,
        object_puts: c.object_puts,
        object_gets: c.object_gets,
    }
}

pub async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<UsageParams>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageTenant)?;
    let granularity = Granularity::parse(params.granularity.as_deref().unwrap_or("hour"))?;
    let csv = match params.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format {other:?} is not one of \"json\", \"csv\""
            )));
        }
        None => headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let now = state.engine.clock().now_ms();
    let end = match &params.end {
        Some(t) => parse_time("end", t)?,
        None => now,
    };
    let start = match &params.start {
        Some(t) => parse_time("start", t)?,
        None => end.saturating_sub(DEFAULT_RANGE_MS),
    };
    if end <= start {
        return Err(strata_tenancy::TenancyError::InvalidArgument(format!(
            "end ({end}) must be after start ({start})"
        ))
        .into());
    }
    // The buckets cover whole minutes, hours or days from the one holding
    // the start: the reply's start (and its totals') is that bucket's.
    let start = granularity.floor(start);
    // Each tenant with its life: what a deleted tenant of the same name
    // used before (or a later one after) is not this tenant's. The bill of
    // all tenants lists deleted ones too, each row saying when it was.
    let tenants: Vec<Life> = if params.all_tenants {
        caller.require(Permission::ManageService)?;
        if headers.contains_key(super::auth::TENANT_HEADER) {
            return Err(ApiError::invalid(format!(
                "all_tenants=true (the CLI's --all-tenants) asks for every tenant's usage; \
                 it cannot be combined with {} (--tenant), which asks for one tenant's",
                super::auth::TENANT_HEADER
            )));
        }
        let mut all: BTreeMap<(String, i64), Option<i64>> = BTreeMap::new();
        for t in state.credentials.list_tenants().await? {
            all.insert((t.name, t.created_ms), None);
        }
        for t in state.credentials.list_deleted_tenants().await? {
            if t.deleted_ms >= start {
                all.insert((t.name, t.created_ms), Some(t.deleted_ms));
            }
        }
        lives(all)
    } else {
        // A deleted tenant (a service admin may still ask for its bill)
        // has no creation time left: all of its name's usage.
        let since_ms = match state.credentials.get_tenant(&caller.tenant).await {
            Ok(t) => t.created_ms,
            Err(strata_tenancy::TenancyError::Catalog(
                strata_metadata::CatalogError::TenantNotFound { .. },
            )) => i64::MIN,
            Err(e) => return Err(e.into()),
        };
        vec![Life {
            tenant: caller.tenant.clone(),
            since: since_ms,
            deleted_ms: None,
            until: None,
        }]
    };
    let mut usage = Vec::new();
    let mut totals = Vec::new();
    for life in &tenants {
        let whose = Whose {
            tenant: &life.tenant,
            deleted_ms: life.deleted_ms,
        };
        let buckets: Vec<UsageBucket> = state
            .usage
            .query_since(
                &life.tenant,
                life.since,
                life.until,
                start,
                end,
                granularity,
            )
            .await?;
        if life.deleted_ms.is_some() && buckets.is_empty() {
            continue;
        }
        let mut total = UsageCounts::default();
        for b in &buckets {
            total.merge(&b.counts);
            usage.push(row(whose, b.start_ms, &b.counts));
        }
        totals.push(row(whose, start, &total));
    }
    if csv {
        let mut response = to_csv(granularity, &usage).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(axum::Json(UsageReply {
        granularity: granularity.as_str().to_string(),
        start: rfc3339(start),
        end: rfc3339(end),
        usage,
        totals,
    })
    .into_response())
}

/// One line per bucket; one `requests.<operation>` column per operation
/// that appears anywhere in the result.
fn to_csv(granularity: Granularity, rows: &[UsageRow]) -> String {
    let ops: BTreeSet<&String> = rows.iter().flat_map(|r| r.requests.keys()).collect();
    let mut out = String::from("tenant,start,start_ms,granularity,requests_total");
    for c in Counter::ALL {
        out.push(',');
        out.push_str(c.name());
    }
    out.push_str(",hot_byte_hours,cold_byte_hours,tenant_deleted_ms");
    for op in &ops {
        out.push_str(",requests.");
        out.push_str(op);
    }
    out.push('\n');
    for r in rows {
        let values = [
            r.published_messages,
            r.published_bytes,
            r.delivered_messages,
            r.delivered_bytes,
            r.redeliveries,
            r.hot_byte_seconds,
            r.cold_byte_seconds,
            r.object_puts,
            r.object_gets,
        ];
        out.push_str(&format!(
            "{},{},{},{},{}",
            r.tenant,
            r.start,
            r.start_ms,
            granularity.as_str(),
            r.requests_total
        ));
        for v in values {
            out.push_str(&format!(",{v}"));
        }
        out.push_str(&format!(
            ",{:.6},{:.6},{}",
            r.hot_byte_hours,
            r.cold_byte_hours,
            r.tenant_deleted_ms
                .map_or(String::new(), |ms| ms.to_string())
        ));
        for op in &ops {
            out.push_str(&format!(",{}", r.requests.get(*op).copied().unwrap_or(0)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_shared_by_two_lives_of_a_name_is_the_later_ones() {
        const M: i64 = 60_000;
        let mut all = BTreeMap::new();
        // "a": deleted in minute 10 and made again in it, deleted in minute
        // 20, made again in minute 25 and alive.
        all.insert(("a".to_string(), M), Some(10 * M + 5));
        all.insert(("a".to_string(), 10 * M + 30), Some(20 * M));
        all.insert(("a".to_string(), 25 * M + 1), None);
        all.insert(("b".to_string(), 3 * M), None);
        let lives = lives(all);
        let until: Vec<(&str, Option<i64>)> =
            lives.iter().map(|l| (l.tenant.as_str(), l.until)).collect();
        assert_eq!(
            until,
            [
                ("a", Some(10 * M - 1)),
                ("a", Some(20 * M)),
                ("a", None),
                ("b", None)
            ]
        );
        // The rows still say when each was deleted.
        assert_eq!(lives[0].deleted_ms, Some(10 * M + 5));
    }

    #[test]
    fn csv_columns_follow_the_counters() {
        let mut c = UsageCounts::default();
        c.add_request("publish");
        c.add(Counter::PublishedMessages, 2);
        let whose = Whose {
            tenant: "a",
            deleted_ms: Some(9),
        };
        let text = to_csv(Granularity::Hour, &[row(whose, 0, &c)]);
        let mut lines = text.lines();
        let header: Vec<_> = lines.next().unwrap().split(',').collect();
        let values: Vec<_> = lines.next().unwrap().split(',').collect();
        assert_eq!(header.len(), values.len());
        let at = |name: &str| values[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(at("published_messages"), "2");
        assert_eq!(at("requests.publish"), "1");
        assert_eq!(at("start"), "1970-01-01T00:00:00.000Z");
        assert_eq!(at("tenant_deleted_ms"), "9");
    }

    #[test]
    fn times_parse_both_ways() {
        assert_eq!(parse_time("start", "1000").unwrap(), 1000);
        assert_eq!(parse_time("start", "1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(
            parse_time("start", "1970-01-01T01:00:01+01:00").unwrap(),
            1000
        );
        assert!(parse_time("start", "yesterday").is_err());
        assert!(parse_time("start", "-5").is_err());
    }
}
