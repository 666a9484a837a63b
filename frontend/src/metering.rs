//! Metering on a running node: the loops that sample stored bytes, flush
//! usage records and roll them up; the operation names requests are
//! counted under; and the per-tenant Prometheus series.

pub mod unflushed;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use strata_common::Clock;
use strata_common::usage::{Counter, Meter, UsageCounts};
use strata_engine::Engine;
use strata_tenancy::UsageLedger;
use tokio::task::JoinHandle;

use crate::config::MeteringSection;

/// The tenant label under which tenants beyond the series limit are summed.
pub const OTHER_TENANTS: &str = "_other";

/// Operation names requests are metered under: the OpenAPI `operationId`
/// of each route, by path template, then method.
#[derive(Debug, Clone, Default)]
pub struct Operations(Arc<HashMap<String, Vec<(String, String)>>>);

impl Operations {
    /// Reads every operation id from an OpenAPI document.
    pub fn from_openapi(document: &str) -> Self {
        let mut map = HashMap::new();
        let parsed: serde_json::Value = serde_json::from_str(document).unwrap_or_default();
        if let Some(paths) = parsed.get("paths").and_then(|p| p.as_object()) {
            for (path, methods) in paths {
                let Some(methods) = methods.as_object() else {
                    continue;
                };
                for (method, op) in methods {
                    if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                        map.entry(path.clone())
                            .or_insert_with(Vec::new)
                            .push((method.clone(), id.to_string()));
                    }
                }
            }
        }
        Self(Arc::new(map))
    }

    /// The operation for `method` (any case) on route template `path`, or
    /// "other" for requests that matched no route.
    /// Allocation-free: it runs on every request.
    pub fn name(&self, method: &str, path: Option<&str>) -> &str {
        path.and_then(|p| self.0.get(p))
            .and_then(|methods| methods.iter().find(|(m, _)| m.eq_ignore_ascii_case(method)))
            .map_or("other", |(_, id)| id.as_str())
    }
}

/// Background metering work of one node.
#[derive(Debug)]
pub struct MeteringTasks {
    tasks: Vec<JoinHandle<()>>,
    sampler: StorageSampler,
    ledger: Arc<UsageLedger>,
    data_dir: PathBuf,
}

/// Charges stored bytes for the time since the previous sample.
#[derive(Debug, Clone)]
struct StorageSampler {
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    last_ms: Arc<std::sync::Mutex<i64>>,
}

impl StorageSampler {
    fn sample(&self) {
        let now = self.clock.now_ms();
        let elapsed = {
            let mut last = self.last_ms.lock().unwrap_or_else(|p| p.into_inner());
            let elapsed = now.saturating_sub(*last).max(0) as u64;
            *last = now;
            elapsed
        };
        let stored = self.engine.stored_bytes_by_tenant();
        self.engine.meter().sample_storage(stored, elapsed);
    }
}

impl MeteringTasks {
    /// Starts sampling, flushing and rolling up; first writes the usage
    /// an earlier process kept in `data_dir`.
    pub fn start(
        engine: Arc<Engine>,
        ledger: Arc<UsageLedger>,
        clock: Arc<dyn Clock>,
        settings: &MeteringSection,
        data_dir: PathBuf,
    ) -> Self {
        let sampler = StorageSampler {
            engine,
            last_ms: Arc::new(std::sync::Mutex::new(clock.now_ms())),
            clock: clock.clone(),
        };
        let every = |ms: u64| Duration::from_millis(ms.max(1));
        let sample_every = every(settings.storage_sample_interval_ms);
        let flush_every = every(settings.flush_interval_ms);
        let grace = i64::try_from(settings.rollup_grace_ms).unwrap_or(i64::MAX);
        let retention = i64::try_from(settings.minute_retention_hours)
            .unwrap_or(i64::MAX)
            .saturating_mul(strata_common::usage::HOUR_MS);
        let (s, c) = (sampler.clone(), clock.clone());
        let sampling = tokio::spawn(async move {
            loop {
                c.sleep(sample_every).await;
                s.sample();
            }
        });
        let (l, c, dir) = (ledger.clone(), clock.clone(), data_dir.clone());
        let flushing = tokio::spawn(async move {
            // Usage an earlier process kept because it could not write it.
            let mut kept_left = !unflushed::write_kept(&l, &dir).await;
            loop {
                c.sleep(flush_every).await;
                if kept_left {
                    kept_left = !unflushed::write_kept(&l, &dir).await;
                }
                if let Err(e) = l.flush().await {
                    tracing::warn!(error = %e, "usage flush failed; will retry");
                }
            }
        });
        let (l, c) = (ledger.clone(), clock.clone());
        let rolling = tokio::spawn(async move {
            loop {
                match l.roll_up(grace, retention).await {
                    Ok(0) => {}
                    Ok(hours) => tracing::debug!(hours, "usage rolled up"),
                    Err(e) => tracing::warn!(error = %e, "usage roll-up failed; will retry"),
                }
                c.sleep(Duration::from_secs(60)).await;
            }
        });
        Self {
            tasks: vec![sampling, flushing, rolling],
            sampler,
            ledger,
            data_dir,
        }
    }

    /// Stops the loops, takes a last storage sample and writes everything
    /// counted so far, or keeps it in the data directory for the next start
    /// if the metadata store refuses or `give_up` ends first. Call after
    /// the engine stopped serving.
    pub async fn finish(self, give_up: impl std::future::Future<Output = ()>) {
        for t in &self.tasks {
            t.abort();
        }
        self.sampler.sample();
        unflushed::flush_or_keep(&self.ledger, &self.data_dir, give_up).await;
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tenant: String,
    tier: &'static str,
}

/// Per-tenant series, computed from the meter at scrape time. At most
/// `max_tenants` tenants get their own label (the busiest by bytes
/// published plus delivered); the others are summed under
/// [`OTHER_TENANTS`], so cardinality is bounded whatever the tenant count.
#[derive(Debug)]
pub struct TenantCollector {
    pub meter: Arc<Meter>,
    pub max_tenants: usize,
}

impl TenantCollector {
    fn bounded(&self) -> Vec<(String, UsageCounts, u64, u64)> {
        let mut all: Vec<(String, UsageCounts)> = self.meter.totals().into_iter().collect();
        all.sort_by_key(|(name, c)| {
            (
                std::cmp::Reverse(c.published_bytes.saturating_add(c.delivered_bytes)),
                name.clone(),
            )
        });
        let mut out: Vec<(String, UsageCounts, u64, u64)> = Vec::new();
        let mut other = UsageCounts::default();
        let (mut other_hot, mut other_cold) = (0u64, 0u64);
        for (i, (tenant, counts)) in all.into_iter().enumerate() {
            let stored = self.meter.stored_bytes(&tenant);
            if i < self.max_tenants {
                out.push((tenant, counts, stored.hot, stored.cold));
            } else {
                other.merge(&counts);
                other_hot += stored.hot;
                other_cold += stored.cold;
            }
        }
        if !other.is_empty() || other_hot + other_cold > 0 {
            out.push((OTHER_TENANTS.to_string(), other, other_hot, other_cold));
        }
        out
    }
}

impl Collector for TenantCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = self.bounded();
        let counter = ConstCounter::new(0u64);
        {
            let mut family = encoder.encode_descriptor(
                "tenant_requests",
                "Requests billed to the tenant since this process started",
                None,
                counter.metric_type(),
            )?;
            for (tenant, counts, _, _) in &rows {
                let labels = TenantLabels {
                    tenant: tenant.clone(),
                };
                ConstCounter::new(counts.requests_total())
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        for c in Counter::ALL {
            let name = format!("tenant_{}", c.name());
            let mut family = encoder.encode_descriptor(
                &name,
                "Metered usage of the tenant since this process started (see docs/metering.md)",
                None,
                counter.metric_type(),
            )?;
            for (tenant, counts, _, _) in &rows {
                let labels = TenantLabels {
                    tenant: tenant.clone(),
                };
                ConstCounter::new(counts.get(c)).encode(family.encode_family(&labels)?)?;
            }
        }
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "tenant_stored_bytes",
            "Bytes the tenant stores, by tier, at the last sample",
            None,
            gauge.metric_type(),
        )?;
        for (tenant, _, hot, cold) in &rows {
            for (tier, bytes) in [("hot", *hot), ("cold", *cold)] {
                let labels = TierLabels {
                    tenant: tenant.clone(),
                    tier,
                };
                let value = i64::try_from(bytes).unwrap_or(i64::MAX);
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_come_from_the_openapi_document() {
        let ops = Operations::from_openapi(crate::http::ops::OPENAPI);
        assert_eq!(
            ops.name("POST", Some("/v1/topics/{topic}/messages")),
            "publish"
        );
        assert_eq!(ops.name("get", Some("/v1/usage")), "getUsage");
        assert_eq!(ops.name("get", None), "other");
        for (method, path) in crate::http::ROUTES {
            assert_ne!(ops.name(method, Some(path)), "other", "{method} {path}");
        }
    }

    #[test]
    fn tenant_series_are_bounded() {
        let clock = strata_common::ManualClock::new(0, 1);
        let meter = Arc::new(Meter::new(clock));
        for i in 0..10u64 {
            meter.add(&format!("t{i}"), Counter::PublishedBytes, 100 + i);
        }
        let collector = TenantCollector {
            meter,
            max_tenants: 3,
        };
        let rows = collector.bounded();
        let names: Vec<_> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ["t9", "t8", "t7", OTHER_TENANTS]);
        assert_eq!(rows[3].1.published_bytes, (100..107).sum::<u64>());
    }
}
