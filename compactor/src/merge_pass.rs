//! The merge pass: runs of small ranges of many queues, rewritten into one
//! object per `merge_target_bytes`.
//!
//! The planner (`merge`) picks each queue's run. The pass packs the runs
//! of as many queues as fit into one object (sorted by queue, like an
//! upload), PUTs it once, then replaces each queue's run by its range in
//! the new object, each queue in its own fenced commit. A queue whose
//! commit fails (its ranges changed, or another node owns it now) keeps its
//! old ranges; its part of the object is never referenced and goes with
//! the object once no queue references it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt as _;
use strata_common::BlockRef;
use strata_metadata::RangeRecord;
use strata_objects::format::{BlockMeta, ObjectBuilder, decode_block};
use strata_tiering::batch::{BatchHeader, decode_header};

use crate::compactor::Compactor;
use crate::error::{CompactorError, Result};
use crate::host::{LiveQueue, TieredLog};
use crate::merge::{self, MergePolicy, RangeSize};
use crate::upload::ranges_from_blocks;

/// Object prefix of merged objects (runs of many queues each).
pub const MERGED_PREFIX: &str = "merged/";

/// Most objects one merge pass writes, to bound its work.
const OBJECTS_PER_PASS: usize = 16;

/// Queue commits of one merged object in flight together (the metadata
/// store groups them into fewer syncs).
const COMMITS_IN_FLIGHT: usize = 64;

/// One queue's run of ranges to merge.
struct Run {
    queue: LiveQueue,
    old: Vec<RangeRecord>,
}

impl Compactor {
    /// Rewrites runs of small adjacent ranges, many queues per object.
    /// Returns how many queues had a run merged.
    pub async fn merge_small_ranges(&self) -> Result<u64> {
        let log = self.log()?;
        self.verify_store().await?;
        let _exclusive = self.lock.lock().await;
        let policy = MergePolicy {
            small_range_bytes: self.config.merge_small_range_bytes,
            min_ranges: self.config.merge_min_ranges,
            target_bytes: self.config.merge_target_bytes,
        };
        let mut queues = log.queues();
        // The object holds its queues in key order, as an upload does.
        queues.sort_by_key(|q| q.key);
        let (mut merged, mut objects) = (0u64, 0usize);
        let mut runs: Vec<Run> = Vec::new();
        let mut run_bytes = 0u64;
        for q in queues {
            let cold = log.cold_ranges(q.key);
            let sizes: Vec<RangeSize> = cold
                .iter()
                .map(|r| RangeSize {
                    base_offset: r.base_offset,
                    end_offset: r.end_offset,
                    stored_bytes: r.stored_bytes,
                    raw_bytes: r.blocks.iter().map(|b| u64::from(b.raw_len)).sum(),
                })
                .collect();
            // The newest range may still grow by uploads: leave it.
            let Some((s, e)) = merge::plan(&sizes, policy, 1) else {
                continue;
            };
            let bytes: u64 = sizes[s..e].iter().map(|r| r.stored_bytes).sum();
            if !runs.is_empty() && run_bytes + bytes > policy.target_bytes {
                merged += self
                    .merge_runs(log.as_ref(), std::mem::take(&mut runs))
                    .await?;
                run_bytes = 0;
                objects += 1;
                if objects >= OBJECTS_PER_PASS {
                    return Ok(merged);
                }
            }
            let old = cold[s..e].iter().map(|r| (**r).clone()).collect();
            runs.push(Run { queue: q, old });
            run_bytes += bytes;
        }
        if !runs.is_empty() {
            merged += self.merge_runs(log.as_ref(), runs).await?;
        }
        Ok(merged)
    }

    /// Writes `runs` (sorted by queue) as one object and commits each
    /// queue's new range; returns how many queues took theirs.
    async fn merge_runs(&self, log: &dyn TieredLog, runs: Vec<Run>) -> Result<u64> {
        let sources = self.read_sources(log, &runs).await?;
        let target_block_bytes = self.config.target_block_bytes;
        let Some((kept, object, blocks)) =
            Compactor::on_blocking_pool(move || build_merged(target_block_bytes, runs, &sources))
                .await?
        else {
            return Ok(0);
        };
        let name = format!(
            "{MERGED_PREFIX}{}/{}.seg",
            self.config.node_id,
            self.unique_suffix()
        );
        let merged = ranges_from_blocks(&name, &blocks);
        // Each queue's new range must cover exactly its old ones: checked
        // before anything is written.
        let matches = merged.len() == kept.len()
            && kept.iter().zip(&merged).all(|(run, new)| {
                new.queue == run.queue.key
                    && run.old.first().map(|r| r.base_offset) == Some(new.base_offset)
                    && run.old.last().map(|r| r.end_offset) == Some(new.end_offset)
            });
        if !matches {
            return Err(CompactorError::Internal(format!(
                "merged object {name} does not cover its runs exactly"
            )));
        }
        let size: u64 = object.iter().map(|part| part.len() as u64).sum();
        let began = self.clock.monotonic();
        self.objects.put_parts(&name, object).await?;
        // One PUT per tenant whose data the object holds.
        let tenants: BTreeSet<&str> = kept.iter().map(|r| &*r.queue.tenant).collect();
        for tenant in tenants {
            log.object_put(tenant);
        }
        self.confirm_store_holds(&name).await?;
        let name = &name;
        let commits = kept.into_iter().zip(merged).map(|(run, new)| async move {
            self.fresh_enough(name, began)?;
            let fence = self.catalog.owner_check(run.queue.key, &run.queue.owner);
            // A changed queue keeps its old ranges; its part is never referenced.
            if !self.catalog.replace_ranges(&run.old, &new, fence).await? {
                return Ok(false);
            }
            Ok(log.ranges_merged(run.queue.key, &run.old, new))
        });
        let outcomes: Vec<Result<bool>> = futures::stream::iter(commits)
            .buffer_unordered(COMMITS_IN_FLIGHT)
            .collect()
            .await;
        let applied = outcomes.iter().filter(|o| matches!(o, Ok(true))).count() as u64;
        if applied > 0 {
            self.counters.merges.fetch_add(applied, Ordering::Relaxed);
            self.counters
                .merged_bytes
                .fetch_add(size, Ordering::Relaxed);
        }
        // Commits that failed leave their queues as they were; report the first.
        outcomes
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(applied), Err)
    }

    /// Reads every block the runs need straight from object storage (not
    /// through the block cache: merged data is cold, and must not evict what
    /// readers use), each source object in as few ranged GETs as its blocks
    /// allow. Each GET is billed to every tenant with a block in it.
    async fn read_sources(&self, log: &dyn TieredLog, runs: &[Run]) -> Result<Sources> {
        let mut wanted: BTreeMap<&str, Vec<(u64, u32, &str)>> = BTreeMap::new();
        for run in runs {
            for range in &run.old {
                let blocks = wanted.entry(&range.object).or_default();
                for b in &range.blocks {
                    blocks.push((b.offset, b.len, &run.queue.tenant));
                }
            }
        }
        let mut gets = Vec::new();
        for (object, blocks) in &wanted {
            let offsets: Vec<(u64, u32)> = blocks.iter().map(|&(o, l, _)| (o, l)).collect();
            for span in merge::read_spans(&offsets, SPAN_GAP_BYTES, MAX_SPAN_BYTES) {
                let tenants: BTreeSet<&str> = blocks
                    .iter()
                    .filter(|&&(o, _, _)| span.contains(&o))
                    .map(|&(_, _, t)| t)
                    .collect();
                for tenant in tenants {
                    log.object_get(tenant);
                }
                gets.push(async move {
                    let bytes = self.objects.get_range(object, span.clone()).await?;
                    Ok::<_, CompactorError>(((object.to_string(), span.start), bytes))
                });
            }
        }
        let spans: Vec<Result<((String, u64), Bytes)>> = futures::stream::iter(gets)
            .buffer_unordered(GETS_IN_FLIGHT)
            .collect()
            .await;
        let mut read = BTreeMap::new();
        for span in spans {
            let (key, bytes) = span?;
            read.insert(key, bytes);
        }
        Ok(Sources { spans: read })
    }
}

/// A merged object (its parts), its blocks, and the runs it holds.
type Merged = (Vec<Run>, Vec<Bytes>, Vec<BlockMeta>);

/// Decodes the runs from what was read and builds the merged object; the
/// runs it holds come back beside it (`None` if no run could be read).
fn build_merged(
    target_block_bytes: usize,
    runs: Vec<Run>,
    sources: &Sources,
) -> Result<Option<Merged>> {
    let built = |e| CompactorError::Internal(format!("building merged object: {e}"));
    let mut builder = ObjectBuilder::new(target_block_bytes);
    let mut kept = Vec::with_capacity(runs.len());
    for run in runs {
        // A run whose data cannot be read is left out (its queue keeps its
        // ranges, and readers see the damage), not every run beside it.
        let batches = match run_batches(&run, sources) {
            Ok(batches) => batches,
            Err(e) => {
                tracing::warn!(queue = %run.queue.key, error = %e, "merge skips a queue whose ranges cannot be read");
                continue;
            }
        };
        for (header, payload) in batches {
            builder
                .add_batch(
                    run.queue.key,
                    header.base_offset,
                    header.count,
                    header.timestamp_ms,
                    &payload,
                )
                .map_err(built)?;
        }
        kept.push(run);
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let (object, blocks) = builder.finish_parts().map_err(built)?;
    Ok(Some((kept, object, blocks)))
}

/// The batches of one run, in offset order, decoded from what was read.
fn run_batches(run: &Run, sources: &Sources) -> Result<Vec<(BatchHeader, Bytes)>> {
    let mut batches = Vec::new();
    for range in &run.old {
        for block in &range.blocks {
            let corrupt = |e: String| {
                CompactorError::Corrupt(format!(
                    "object {} block at byte {}: {e}",
                    range.object, block.offset
                ))
            };
            let stored = sources
                .block(&range.object, block)
                .ok_or_else(|| corrupt("not read".into()))?;
            for payload in decode_block(block, &stored).map_err(|e| corrupt(e.to_string()))? {
                let header = decode_header(&payload).map_err(|e| corrupt(e.to_string()))?;
                batches.push((header, payload));
            }
        }
    }
    Ok(batches)
}

/// Blocks of one source object closer than this share a GET...
const SPAN_GAP_BYTES: u64 = 256 << 10;
/// ...up to this many bytes: a merge holds about the bytes of its runs (at
/// most `merge_target_bytes`) plus the small gaps it read through.
const MAX_SPAN_BYTES: u64 = 8 << 20;

/// Ranged GETs of one merge in flight together.
const GETS_IN_FLIGHT: usize = 8;

/// The spans a merge read: (object, first byte) → bytes.
struct Sources {
    spans: BTreeMap<(String, u64), Bytes>,
}

impl Sources {
    /// A block's stored bytes, sliced out of the span that holds it.
    fn block(&self, object: &str, block: &BlockRef) -> Option<Bytes> {
        let (&(ref name, start), bytes) = self
            .spans
            .range(..=(object.to_string(), block.offset))
            .next_back()?;
        let from = usize::try_from(block.offset.checked_sub(start)?).ok()?;
        let to = from.checked_add(usize::try_from(block.len).ok()?)?;
        (name == object && to <= bytes.len()).then(|| bytes.slice(from..to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(offset: u64, len: u32) -> BlockRef {
        BlockRef {
            base_offset: 0,
            end_offset: 1,
            min_timestamp_ms: 0,
            max_timestamp_ms: 0,
            offset,
            len,
            raw_len: len,
            crc32c: 0,
        }
    }

    #[test]
    fn a_block_is_sliced_from_its_own_objects_span() {
        let mut spans = BTreeMap::new();
        spans.insert(
            ("seg/a".to_string(), 100),
            Bytes::from_static(b"0123456789"),
        );
        spans.insert(("seg/a".to_string(), 500), Bytes::from_static(b"abcdef"));
        // A name that sorts right after "seg/a": never taken for it.
        spans.insert(("seg/a2".to_string(), 0), Bytes::from_static(b"zzzz"));
        let sources = Sources { spans };
        assert_eq!(sources.block("seg/a", &block(102, 3)).unwrap(), "234");
        assert_eq!(sources.block("seg/a", &block(504, 2)).unwrap(), "ef");
        assert!(
            sources.block("seg/a", &block(108, 5)).is_none(),
            "runs past its span"
        );
        assert!(
            sources.block("seg/a", &block(50, 1)).is_none(),
            "before every span"
        );
        assert!(
            sources.block("seg/a2", &block(10, 1)).is_none(),
            "past a short span"
        );
        assert!(
            sources.block("seg/b", &block(0, 1)).is_none(),
            "not read at all"
        );
    }
}
