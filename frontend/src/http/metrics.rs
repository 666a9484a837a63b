//! Prometheus metrics (`GET /metrics`, service admins): HTTP requests,
//! counted as they finish, and the node's series, read from the engine at
//! scrape time by [`NodeCollector`]. Every family is listed, with its type
//! and meaning, in `docs/operations.md`; a test keeps the two in step.
//!
//! Values the engine counts since start are exported as counters (the text
//! format appends `_total`), values that go up and down as gauges, latency
//! histograms as histograms. Label sets are bounded: route templates, quota
//! rates and object-store operations, never names from requests.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use strata_common::histogram::LatencySnapshot;
use strata_engine::{Engine, NodeStatus};
use strata_tenancy::{Permission, RateLimiter};

use super::AppState;
use super::auth::Caller;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (bounded), never the raw path.
    pub route: String,
    /// A standard method's name or `other` (bounded).
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLabels {
    /// One of the quota rates (bounded).
    rate: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    /// put, get, head, list or delete.
    operation: &'static str,
}

/// The registry `/metrics` encodes, and the HTTP request families the
/// request middleware counts into.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// The node's series and the HTTP request families, plus per-tenant
    /// series when `tenants` is given.
    pub fn new(node: NodeCollector, tenants: Option<crate::metering::TenantCollector>) -> Self {
        let mut registry = Registry::with_prefix("strata");
        registry.register_collector(Box::new(node));
        if let Some(collector) = tenants {
            registry.register_collector(Box::new(collector));
        }
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            latency.clone(),
        );
        Self {
            registry,
            requests,
            latency,
        }
    }
}

/// Reads the engine's and the rate limiter's counts at each scrape.
#[derive(Debug)]
pub struct NodeCollector {
    pub engine: Arc<Engine>,
    pub limiter: Arc<RateLimiter>,
}

/// One unlabelled series of the node: its name (without the `strata_`
/// prefix and a counter's `_total`), help, and value.
enum Series {
    Counter(&'static str, &'static str, Value),
    Gauge(&'static str, &'static str, Value),
    Histogram(&'static str, &'static str, LatencySnapshot),
}

/// Counts print as integers, durations in seconds as floats.
#[derive(Clone, Copy)]
enum Value {
    Count(u64),
    Seconds(f64),
}

/// Every unlabelled series of the node, from one status snapshot.
fn node_series(s: NodeStatus, ready: bool) -> Vec<Series> {
    use Series::{Counter as C, Gauge as G, Histogram as H};
    let n = Value::Count;
    let flag = |b: bool| Value::Count(u64::from(b));
    let seconds = |ms: f64| Value::Seconds(ms / 1e3);
    let wal = s.wal;
    let t = s.tiering;
    let o = t.objects;
    let meta = s.metadata.unwrap_or_default();
    vec![
        G(
            "ready",
            "1 while the node accepts publishes, 0 while /readyz answers 503 (WAL failed, shutting down, write fence shut)",
            flag(ready),
        ),
        G(
            "wal_used_bytes",
            "Bytes of WAL segment files",
            n(wal.used_bytes),
        ),
        G(
            "wal_max_bytes",
            "The WAL's room (wal.max_bytes)",
            n(wal.max_bytes),
        ),
        G(
            "wal_failed",
            "1 once a WAL write or fdatasync failed: the node refuses publishes and stops",
            flag(wal.failed),
        ),
        C("wal_appends", "WAL records made durable", n(wal.appends)),
        C(
            "wal_syncs",
            "fdatasync calls for WAL record groups",
            n(wal.syncs),
        ),
        C(
            "wal_synced_bytes",
            "Bytes written to the WAL and synced",
            n(wal.synced_bytes),
        ),
        C(
            "wal_paced_appends",
            "WAL appends that waited for their pace while the WAL was filling",
            n(wal.paced_appends),
        ),
        C(
            "wal_pace_wait_seconds",
            "Time WAL appends waited for their pace, in all",
            seconds(wal.pace_wait_ms as f64),
        ),
        H(
            "wal_sync_seconds",
            "Duration of each WAL group's write + fdatasync",
            wal.sync_latency,
        ),
        G(
            "upload_lag_bytes",
            "Durable WAL bytes not yet in object storage",
            n(t.upload_lag_bytes),
        ),
        G(
            "upload_lag_seconds",
            "Age of the oldest durable batch not yet in object storage",
            seconds(t.upload_lag_ms.max(0) as f64),
        ),
        C("uploads", "Objects of WAL data uploaded", n(t.uploads)),
        C(
            "uploaded_bytes",
            "Bytes of WAL data uploaded",
            n(t.uploaded_bytes),
        ),
        C(
            "merges",
            "Segment objects merged into larger ones",
            n(t.merges),
        ),
        C(
            "merged_bytes",
            "Bytes rewritten by merges",
            n(t.merged_bytes),
        ),
        C(
            "expired_ranges",
            "Segment ranges deleted by retention",
            n(t.expired_ranges),
        ),
        C(
            "gc_deleted_objects",
            "Objects deleted by garbage collection",
            n(t.gc_deleted_objects),
        ),
        C(
            "compactor_failed_passes",
            "Upload and maintenance passes that failed",
            n(t.failed_passes),
        ),
        G(
            "compactor_failing",
            "1 while one of the compactor's loops keeps failing (see /v1/status tiering.last_error)",
            flag(t.last_error.is_some()),
        ),
        C(
            "object_put_bytes",
            "Bytes written to object storage",
            n(o.put_bytes),
        ),
        C(
            "object_get_bytes",
            "Bytes read from object storage",
            n(o.get_bytes),
        ),
        C(
            "object_request_errors",
            "Object-store attempts that failed (not found is an answer, not an error)",
            n(o.errors),
        ),
        C(
            "object_request_retries",
            "Object-store attempts after the first for the same call",
            n(o.retries),
        ),
        C(
            "object_request_timeouts",
            "Object-store attempts abandoned by their timeout (also errors)",
            n(o.timeouts),
        ),
        C(
            "block_cache_hits",
            "Cold reads served by the block cache",
            n(t.block_cache.hits),
        ),
        C(
            "block_cache_misses",
            "Cold reads the block cache fetched from object storage",
            n(t.block_cache.misses),
        ),
        G(
            "block_cache_memory_bytes",
            "Bytes in the block cache's memory tier",
            n(t.block_cache.memory_bytes as u64),
        ),
        C(
            "cold_read_fetch_errors",
            "Cold-read fetches that failed",
            n(t.cold_reader.fetch_errors),
        ),
        G(
            "retained_messages",
            "Messages readable on this node",
            n(s.retained_messages),
        ),
        G(
            "retained_bytes",
            "Bytes held by live queues: in object storage, and in the WAL what is not uploaded yet",
            n(s.retained_bytes),
        ),
        G(
            "tail_cache_bytes",
            "Bytes in the tail cache",
            n(s.tail_cache.bytes as u64),
        ),
        H(
            "metadata_commit_seconds",
            "Duration of each metadata commit this node made (committed or not)",
            meta.commits,
        ),
        H(
            "metadata_read_seconds",
            "Duration of each metadata get or scan page this node made",
            meta.reads,
        ),
        C(
            "metadata_checks_failed",
            "Metadata commits that wrote nothing because a check did not hold",
            n(meta.checks_failed),
        ),
        C(
            "metadata_failed_commits",
            "Metadata commits that returned an error",
            n(meta.failed_commits),
        ),
        C(
            "metadata_failed_reads",
            "Metadata gets and scans that returned an error",
            n(meta.failed_reads),
        ),
        C(
            "metadata_cancelled",
            "Metadata calls whose caller stopped waiting before they returned",
            n(meta.cancelled),
        ),
        C("pop_acks", "Receipt handles acknowledged", n(s.pop.acks)),
        C(
            "pop_ack_commits",
            "Metadata commits that made acknowledgements durable",
            n(s.pop.ack_commits),
        ),
        G(
            "message_index_pending_entries",
            "Message index entries waiting to be written as a run",
            n(s.message_index.pending_entries),
        ),
        C(
            "message_index_runs_written",
            "Message index runs written to object storage",
            n(s.message_index.runs_written),
        ),
    ]
}

/// A latency snapshot encoded as a Prometheus histogram in seconds.
struct SnapshotHistogram(LatencySnapshot);

impl std::fmt::Debug for SnapshotHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotHistogram")
    }
}

impl EncodeMetric for SnapshotHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_us as f64 / 1e6,
            self.0.count(),
            &self.0.buckets_seconds(),
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn encode_one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let metric_encoder = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(metric_encoder)
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.engine.status();
        let objects = status.tiering.objects;
        let ready = self.engine.not_ready().is_none();
        for series in node_series(status, ready) {
            match series {
                Series::Counter(name, help, Value::Count(v)) => {
                    encode_one(&mut encoder, name, help, &ConstCounter::new(v))?;
                }
                Series::Counter(name, help, Value::Seconds(v)) => {
                    encode_one(&mut encoder, name, help, &ConstCounter::new(v))?;
                }
                Series::Gauge(name, help, Value::Count(v)) => {
                    let v = i64::try_from(v).unwrap_or(i64::MAX);
                    encode_one(&mut encoder, name, help, &ConstGauge::new(v))?;
                }
                Series::Gauge(name, help, Value::Seconds(v)) => {
                    encode_one(&mut encoder, name, help, &ConstGauge::new(v))?;
                }
                Series::Histogram(name, help, h) => {
                    encode_one(&mut encoder, name, help, &SnapshotHistogram(h))?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "object_requests",
                "Object-store calls by operation (an attempt with its retries is one call)",
                None,
                MetricType::Counter,
            )?;
            for (operation, count) in [
                ("put", objects.puts),
                ("get", objects.gets),
                ("head", objects.heads),
                ("list", objects.lists),
                ("delete", objects.deletes),
            ] {
                ConstCounter::new(count)
                    .encode(family.encode_family(&OperationLabels { operation })?)?;
            }
        }
        let rates: Vec<_> = strata_tenancy::Rate::ALL
            .into_iter()
            .map(|rate| (rate.label(), self.limiter.throttle_counts(rate)))
            .collect();
        {
            let mut family = encoder.encode_descriptor(
                "quota_delayed_requests",
                "Requests over a tenant rate that waited for their tokens",
                None,
                MetricType::Counter,
            )?;
            for (rate, counts) in &rates {
                ConstCounter::new(counts.delayed)
                    .encode(family.encode_family(&RateLabels { rate })?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "quota_refused_requests",
            "Requests over a tenant rate refused with 429 / TOO_MANY_REQUESTS",
            None,
            MetricType::Counter,
        )?;
        for (rate, counts) in &rates {
            ConstCounter::new(counts.refused)
                .encode(family.encode_family(&RateLabels { rate })?)?;
        }
        Ok(())
    }
}

/// `GET /metrics`: the OpenMetrics text of every family.
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> Response {
    if let Err(e) = caller.require(Permission::ManageService) {
        return e.into_response();
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.metrics.registry) {
        return super::ApiError::new(strata_common::ErrorCode::Internal, e.to_string())
            .into_response();
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The `method` label: the standard methods by name, any other as `other`,
/// so that a client inventing methods cannot add series.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware: counts and times every request under its route template.
pub async fn track_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method()).to_string();
    let clock = state.engine.clock();
    let started = clock.monotonic();
    let response = next.run(request).await;
    let labels = RequestLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .latency
        .get_or_create(&labels)
        .observe(clock.monotonic().saturating_sub(started).as_secs_f64());
    response
}
