//! Operational endpoints: health, status, metrics, the OpenAPI document, and
//! the request-counting middleware.

use axum::Json as Reply;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
pub use strata_client::api::status::{
    BlockCacheJson, CacheJson, ColdReadsJson, MessageIndexJson, MetadataJson, ObjectRequestsJson,
    PopJson, RecoveryJson, ServingLeaseJson, SkippedDamageJson, StatusJson, TieringJson, WalJson,
};

use super::auth::Caller;
use super::{ApiResult, AppState};
use strata_common::histogram::{LATENCY_BOUNDS_US, LatencySnapshot};
use strata_tenancy::Permission;

/// The OpenAPI 3.1 document for this API.
pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (bounded), never the raw path.
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Prometheus metrics of the HTTP frontend; node gauges are refreshed from
/// the engine at scrape time.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    wal_used_bytes: Gauge<i64, AtomicGauge>,
    wal_failed: Gauge<i64, AtomicGauge>,
    wal_syncs: Gauge<i64, AtomicGauge>,
    wal_appends: Gauge<i64, AtomicGauge>,
    wal_paced_appends: Gauge<i64, AtomicGauge>,
    wal_pace_wait_ms: Gauge<i64, AtomicGauge>,
    wal_sync_seconds: CopiedHistogram,
    metadata_commit_seconds: CopiedHistogram,
    metadata_read_seconds: CopiedHistogram,
    metadata_checks_failed: Gauge<i64, AtomicGauge>,
    metadata_failed_commits: Gauge<i64, AtomicGauge>,
    metadata_failed_reads: Gauge<i64, AtomicGauge>,
    metadata_cancelled: Gauge<i64, AtomicGauge>,
    retained_messages: Gauge<i64, AtomicGauge>,
    retained_bytes: Gauge<i64, AtomicGauge>,
    tail_cache_bytes: Gauge<i64, AtomicGauge>,
    pop_acks: Gauge<i64, AtomicGauge>,
    pop_ack_commits: Gauge<i64, AtomicGauge>,
    index_pending_entries: Gauge<i64, AtomicGauge>,
    index_runs_written: Gauge<i64, AtomicGauge>,
    quota_delayed: Family<RateLabels, Gauge<i64, AtomicGauge>>,
    quota_refused: Family<RateLabels, Gauge<i64, AtomicGauge>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLabels {
    /// One of the five quota rates (bounded).
    pub rate: &'static str,
}

type AtomicGauge = std::sync::atomic::AtomicI64;

/// A histogram whose counts live elsewhere (the WAL's I/O thread records
/// them without locks) and are copied in at scrape time.
#[derive(Debug, Clone, Default)]
struct CopiedHistogram(Arc<Mutex<LatencySnapshot>>);

impl CopiedHistogram {
    fn set(&self, snapshot: LatencySnapshot) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }
}

impl EncodeMetric for CopiedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        encoder.encode_histogram::<NoLabelSet>(
            s.sum_us as f64 / 1e6,
            s.count(),
            &s.buckets_seconds(),
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Metrics {
    /// The frontend's metrics, plus per-tenant series when `tenants` is given.
    pub fn new(tenants: Option<crate::metering::TenantCollector>) -> Self {
        let mut registry = Registry::with_prefix("strata");
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
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g: Gauge<i64, AtomicGauge> = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let wal_used_bytes = gauge(
            &mut registry,
            "wal_used_bytes",
            "Bytes of WAL segment files",
        );
        let wal_failed = gauge(
            &mut registry,
            "wal_failed",
            "1 once a WAL write or fdatasync failed: every publish is refused until the node restarts",
        );
        let wal_syncs = gauge(&mut registry, "wal_syncs", "fdatasync calls since start");
        let wal_appends = gauge(
            &mut registry,
            "wal_appends",
            "WAL records appended since start",
        );
        let wal_paced_appends = gauge(
            &mut registry,
            "wal_paced_appends",
            "WAL appends that waited for their pace while the WAL was filling, since start",
        );
        let wal_pace_wait_ms = gauge(
            &mut registry,
            "wal_pace_wait_ms",
            "Milliseconds WAL appends waited for their pace in all, since start",
        );
        let wal_sync_seconds = CopiedHistogram::default();
        registry.register(
            "wal_sync_seconds",
            "Duration of each WAL group's write + fdatasync",
            wal_sync_seconds.clone(),
        );
        let metadata_commit_seconds = CopiedHistogram::default();
        registry.register(
            "metadata_commit_seconds",
            "Duration of each metadata commit this node made (committed or not)",
            metadata_commit_seconds.clone(),
        );
        let metadata_read_seconds = CopiedHistogram::default();
        registry.register(
            "metadata_read_seconds",
            "Duration of each metadata get or scan page this node made",
            metadata_read_seconds.clone(),
        );
        let metadata_checks_failed = gauge(
            &mut registry,
            "metadata_checks_failed",
            "Metadata commits that wrote nothing because a check did not hold, since start",
        );
        let metadata_failed_commits = gauge(
            &mut registry,
            "metadata_failed_commits",
            "Metadata commits that returned an error, since start",
        );
        let metadata_failed_reads = gauge(
            &mut registry,
            "metadata_failed_reads",
            "Metadata gets and scans that returned an error, since start",
        );
        let metadata_cancelled = gauge(
            &mut registry,
            "metadata_cancelled",
            "Metadata calls whose caller stopped waiting before they returned, since start",
        );
        let retained_messages = gauge(
            &mut registry,
            "retained_messages",
            "Messages readable on this node",
        );
        let retained_bytes = gauge(
            &mut registry,
            "retained_bytes",
            "Bytes held by live queues: in object storage, and in the WAL what is not uploaded yet",
        );
        let tail_cache_bytes = gauge(&mut registry, "tail_cache_bytes", "Bytes in the tail cache");
        let pop_acks = gauge(
            &mut registry,
            "pop_acks",
            "Receipt handles acknowledged since start",
        );
        let pop_ack_commits = gauge(
            &mut registry,
            "pop_ack_commits",
            "Metadata commits that made acknowledgements durable, since start",
        );
        let index_pending_entries = gauge(
            &mut registry,
            "message_index_pending_entries",
            "Message index entries waiting to be written as a run",
        );
        let index_runs_written = gauge(
            &mut registry,
            "message_index_runs_written",
            "Message index runs written to object storage since start",
        );
        let quota_delayed = Family::<RateLabels, Gauge<i64, AtomicGauge>>::default();
        registry.register(
            "quota_delayed_requests",
            "Requests over a tenant rate that waited for their tokens, since start",
            quota_delayed.clone(),
        );
        let quota_refused = Family::<RateLabels, Gauge<i64, AtomicGauge>>::default();
        registry.register(
            "quota_refused_requests",
            "Requests over a tenant rate refused with 429 / TOO_MANY_REQUESTS, since start",
            quota_refused.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            wal_used_bytes,
            wal_failed,
            wal_syncs,
            wal_appends,
            wal_paced_appends,
            wal_pace_wait_ms,
            wal_sync_seconds,
            metadata_commit_seconds,
            metadata_read_seconds,
            metadata_checks_failed,
            metadata_failed_commits,
            metadata_failed_reads,
            metadata_cancelled,
            retained_messages,
            retained_bytes,
            tail_cache_bytes,
            pop_acks,
            pop_ack_commits,
            index_pending_entries,
            index_runs_written,
            quota_delayed,
            quota_refused,
        }
    }
}

pub async fn track_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
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

/// A quantile's bucket bound in ms, capped at the largest bound.
fn bound_ms(latency: &LatencySnapshot, q: f64) -> Option<f64> {
    let largest = LATENCY_BOUNDS_US.last().copied().unwrap_or(0);
    latency
        .quantile_bound(q)
        .map(|d| d.min(Duration::from_micros(largest)).as_secs_f64() * 1e3)
}

/// Liveness: 503 once the WAL failed, which only a restart repairs (the
/// WAL recovers at start), so that a supervisor restarts the node.
pub async fn healthz(State(state): State<AppState>) -> Response {
    if state.engine.wal_failed() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "wal failed: every publish is refused until this node restarts (see /v1/status wal)\n",
        )
            .into_response();
    }
    "ok\n".into_response()
}

pub async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn metrics(State(state): State<AppState>, caller: Caller) -> Response {
    if let Err(e) = caller.require(Permission::ManageService) {
        return e.into_response();
    }
    let status = state.engine.status();
    let m = &state.metrics;
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    m.wal_used_bytes.set(clamp(status.wal.used_bytes));
    m.wal_failed.set(i64::from(status.wal.failed));
    m.wal_syncs.set(clamp(status.wal.syncs));
    m.wal_appends.set(clamp(status.wal.appends));
    m.wal_paced_appends.set(clamp(status.wal.paced_appends));
    m.wal_pace_wait_ms.set(clamp(status.wal.pace_wait_ms));
    m.wal_sync_seconds.set(status.wal.sync_latency.clone());
    let timings = status.metadata.clone().unwrap_or_default();
    m.metadata_commit_seconds.set(timings.commits);
    m.metadata_read_seconds.set(timings.reads);
    m.metadata_checks_failed.set(clamp(timings.checks_failed));
    m.metadata_failed_commits.set(clamp(timings.failed_commits));
    m.metadata_failed_reads.set(clamp(timings.failed_reads));
    m.metadata_cancelled.set(clamp(timings.cancelled));
    m.retained_messages.set(clamp(status.retained_messages));
    m.retained_bytes.set(clamp(status.retained_bytes));
    m.tail_cache_bytes
        .set(clamp(status.tail_cache.bytes as u64));
    m.pop_acks.set(clamp(status.pop.acks));
    m.pop_ack_commits.set(clamp(status.pop.ack_commits));
    m.index_pending_entries
        .set(clamp(status.message_index.pending_entries));
    m.index_runs_written
        .set(clamp(status.message_index.runs_written));
    for rate in strata_tenancy::Rate::ALL {
        let counts = state.limiter.throttle_counts(rate);
        let labels = RateLabels { rate: rate.label() };
        m.quota_delayed
            .get_or_create(&labels)
            .set(clamp(counts.delayed));
        m.quota_refused
            .get_or_create(&labels)
            .set(clamp(counts.refused));
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &m.registry) {
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

/// `GET /v1/cluster`: the nodes of this metadata namespace (service admins).
pub async fn cluster(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Reply<strata_client::api::status::ClusterJson>> {
    caller.require(Permission::ManageService)?;
    let engine = &state.engine;
    crate::cluster::status::cluster_status(
        state.credentials.catalog(),
        &engine.config().node_id,
        engine.clock().now_ms(),
    )
    .await
    .map(Reply)
    .map_err(|e| {
        super::ApiError::new(
            strata_common::ErrorCode::Unavailable,
            format!("metadata store: {e}"),
        )
    })
}

pub async fn status(State(state): State<AppState>, caller: Caller) -> ApiResult<Reply<StatusJson>> {
    caller.require(Permission::ManageService)?;
    let catalog = state.credentials.catalog();
    let lease = catalog.serving_lease().await.map_err(|e| {
        super::ApiError::new(
            strata_common::ErrorCode::Unavailable,
            format!("metadata store: {e}"),
        )
    })?;
    let s = state.engine.status();
    let timings = s.metadata.clone().unwrap_or_default();
    let metadata = MetadataJson {
        backend: catalog.store().backend_name().to_string(),
        serving_lease: lease.map(|l| ServingLeaseJson {
            node: l.node,
            identity: l.identity,
            data_dir: l.data_dir,
            expires_ms: l.expires_ms,
            released: l.released,
        }),
        commits: timings.commits.count(),
        commit_p50_ms: bound_ms(&timings.commits, 0.5),
        commit_p99_ms: bound_ms(&timings.commits, 0.99),
        commit_p999_ms: bound_ms(&timings.commits, 0.999),
        checks_failed: timings.checks_failed,
        failed_commits: timings.failed_commits,
        reads: timings.reads.count(),
        read_p50_ms: bound_ms(&timings.reads, 0.5),
        read_p99_ms: bound_ms(&timings.reads, 0.99),
        failed_reads: timings.failed_reads,
        cancelled: timings.cancelled,
    };
    Ok(Reply(StatusJson {
        node_id: s.node_id,
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_ms: s.started_ms,
        topics: s.topics,
        queues: s.queues,
        retained_messages: s.retained_messages,
        retained_bytes: s.retained_bytes,
        wal: WalJson {
            used_bytes: s.wal.used_bytes,
            max_bytes: s.wal.max_bytes,
            fill_ratio: if s.wal.max_bytes == 0 {
                0.0
            } else {
                s.wal.used_bytes as f64 / s.wal.max_bytes as f64
            },
            segments: s.wal.segments,
            appends: s.wal.appends,
            syncs: s.wal.syncs,
            synced_bytes: s.wal.synced_bytes,
            sync_p50_ms: bound_ms(&s.wal.sync_latency, 0.5),
            sync_p99_ms: bound_ms(&s.wal.sync_latency, 0.99),
            sync_p999_ms: bound_ms(&s.wal.sync_latency, 0.999),
            failed: s.wal.failed,
            paced_appends: s.wal.paced_appends,
            pace_wait_ms: s.wal.pace_wait_ms,
        },
        tail_cache: CacheJson {
            bytes: s.tail_cache.bytes,
            capacity_bytes: s.tail_cache.capacity_bytes,
            hits: s.tail_cache.hits,
            misses: s.tail_cache.misses,
        },
        recovery: RecoveryJson {
            segments: s.recovery.segments,
            records: s.recovery.records,
            bytes: s.recovery.bytes,
            truncated_path: s.recovery.truncated_path.map(|p| p.display().to_string()),
            truncated_bytes: s.recovery.truncated_bytes,
            truncated_reason: s.recovery.truncated_reason,
            restarted_at_lsn: s.recovery.restarted_at,
            skipped_damage: s
                .recovery
                .skipped_damage
                .into_iter()
                .map(|(path, offset, reason)| SkippedDamageJson {
                    path: path.display().to_string(),
                    offset,
                    reason,
                })
                .collect(),
        },
        tiering: tiering_json(s.tiering),
        metadata,
        pop: PopJson {
            acks: s.pop.acks,
            ack_commits: s.pop.ack_commits,
        },
        message_index: MessageIndexJson {
            pending_entries: s.message_index.pending_entries,
            runs_written: s.message_index.runs_written,
            runs_merged: s.message_index.runs_merged,
            runs_dropped: s.message_index.runs_dropped,
            objects_swept: s.message_index.objects_swept,
            last_error: s.message_index.last_error,
        },
    }))
}

fn tiering_json(t: strata_engine::TieringStatus) -> TieringJson {
    let o = t.objects;
    let b = t.block_cache;
    let lookups = b.hits + b.misses;
    TieringJson {
        object_store: t.object_store,
        compactor: t.compactor.to_string(),
        checkpoint_lsn: t.checkpoint_lsn,
        upload_lag_bytes: t.upload_lag_bytes,
        upload_lag_ms: t.upload_lag_ms,
        uploads: t.uploads,
        uploaded_bytes: t.uploaded_bytes,
        merges: t.merges,
        merged_bytes: t.merged_bytes,
        expired_ranges: t.expired_ranges,
        gc_deleted_objects: t.gc_deleted_objects,
        failed_passes: t.failed_passes,
        last_error: t.last_error,
        object_requests: ObjectRequestsJson {
            puts: o.puts,
            gets: o.gets,
            heads: o.heads,
            lists: o.lists,
            deletes: o.deletes,
            put_bytes: o.put_bytes,
            get_bytes: o.get_bytes,
            errors: o.errors,
            retries: o.retries,
            timeouts: o.timeouts,
        },
        block_cache: BlockCacheJson {
            hits: b.hits,
            disk_hits: b.disk_hits,
            misses: b.misses,
            coalesced: b.coalesced,
            hit_ratio: if lookups == 0 {
                0.0
            } else {
                b.hits as f64 / lookups as f64
            },
            memory_bytes: b.memory_bytes,
        },
        cold_reads: ColdReadsJson {
            fetches: t.cold_reader.fetches,
            fetch_errors: t.cold_reader.fetch_errors,
            bytes: t.cold_reader.bytes,
            throttled_waits: t.cold_reader.throttled_waits,
            prefetches: t.cold_reader.prefetches_spawned,
            cpu_tasks: t.cold_reader.cpu_tasks,
        },
    }
}
