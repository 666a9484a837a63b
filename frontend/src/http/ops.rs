//! Operational endpoints: health, status, the cluster view and the OpenAPI
//! document (metrics are in `super::metrics`).

use axum::Json as Reply;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

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

/// Readiness: 503 with the reason while this node refuses publishes (WAL
/// failed, shutting down, serving lease or cluster heartbeat lapsed or
/// taken), so that a load balancer sends no traffic to it. Unlike
/// `/healthz`, a lapsed lease may come back: a restart is not the cure.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine.not_ready() {
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
        None => "ready\n".into_response(),
    }
}

pub async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI).into_response()
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
        not_ready: state.engine.not_ready(),
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
