//! The message-index run format: entries that map a hashed message id or key
//! to where the message is stored (topic, queue, offset), for many topics,
//! sorted by hash in one immutable object.
//!
//! Pure bytes in, bytes out. A lookup needs the footer, the summary (fences
//! and queues, small enough to keep in memory) and then one page, each by a
//! range request; a merge reads a run whole.
//!
//! # Layout
//!
//! ```text
//! 0                                     summary_offset               len-32   len
//! ┌──────────┬──────────┬─────┬──────────┬────────────┬──────────────┬────────┐
//! │  page 0  │  page 1  │ ... │ page p-1 │   fences   │    queues    │ footer │
//! └──────────┴──────────┴─────┴──────────┴────────────┴──────────────┴────────┘
//!
//! page    = entry * k | crc32c u32     (k = PAGE_ENTRIES; fewer in the last page)
//! entry   (28 bytes, little-endian, sorted by all four fields in order):
//!   0  hash    u64   entry_hash(topic, kind, value)
//!   8  topic   u64
//!  16  queue   u32
//!  20  offset  u64
//! fences  = first hash of every page, u64 * p | crc32c u32
//! queues  = (topic u64 | queue u32 | end u64) * q | crc32c u32
//!           one past the last offset the run covers, per queue, sorted
//!
//! footer (32 bytes):
//!   0  magic    [u8; 8]  b"STRIDX01"
//!   8  version  u32      RUN_FORMAT_VERSION
//!  12  entries  u64
//!  20  queues   u32
//!  24  reserved u32      zero
//!  28  crc32c   u32      crc32c of footer bytes 0..28
//! ```
//!
//! Every other offset follows from the two counts, and the object's length
//! must equal what they imply. Every byte is under one checksum.
//!
//! Hashes are 64-bit xxh3; two values may share one, so a reader confirms a
//! match against the message itself.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Magic at the start of the footer.
pub const RUN_MAGIC: [u8; 8] = *b"STRIDX01";
/// Version written in the footer; readers reject versions they do not know.
pub const RUN_FORMAT_VERSION: u32 = 1;
/// Length of the footer.
pub const RUN_FOOTER_LEN: usize = 32;
/// Length of one entry.
pub const ENTRY_LEN: usize = 28;
/// Entries per page (56 KiB): one range request per lookup and run.
pub const PAGE_ENTRIES: usize = 2048;
const QUEUE_LEN: usize = 20;
const CRC_LEN: usize = 4;

/// What a value is: the two never match each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Id,
    Key,
}

/// The hash an entry is filed under: a value of one kind in one topic.
pub fn entry_hash(topic: u64, kind: ValueKind, value: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&topic.to_le_bytes());
    h.update(&[match kind {
        ValueKind::Id => 0,
        ValueKind::Key => 1,
    }]);
    h.update(value.as_bytes());
    h.digest()
}

/// One indexed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunEntry {
    pub hash: u64,
    pub topic: u64,
    pub queue: u32,
    pub offset: u64,
}

/// How far a run covers one queue: every offset below `end` the index task
/// had seen when the run was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueEnd {
    pub topic: u64,
    pub queue: u32,
    pub end: u64,
}

/// Why a run could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RunFormatError {
    #[error("corrupt index run ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("unsupported index run version {version} (this build reads {RUN_FORMAT_VERSION})")]
    UnsupportedVersion { version: u32 },
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> RunFormatError {
    RunFormatError::Corrupt {
        what,
        detail: detail.into(),
    }
}

/// The decoded footer: the two counts every offset follows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunFooter {
    pub entries: u64,
    pub queues: u32,
}

const PAGE_STRIDE: u64 = (PAGE_ENTRIES * ENTRY_LEN + CRC_LEN) as u64;

impl RunFooter {
    pub fn pages(&self) -> u64 {
        self.entries.div_ceil(PAGE_ENTRIES as u64)
    }

    /// Byte range of page `page`.
    pub fn page_range(&self, page: u64) -> Range<u64> {
        let start = page * PAGE_STRIDE;
        let in_page = (self.entries - page * PAGE_ENTRIES as u64).min(PAGE_ENTRIES as u64);
        start..start + in_page * ENTRY_LEN as u64 + CRC_LEN as u64
    }

    fn pages_len(&self) -> u64 {
        self.entries * ENTRY_LEN as u64 + self.pages() * CRC_LEN as u64
    }

    /// Byte range of the fences and the queues, read as one.
    pub fn summary_range(&self) -> Range<u64> {
        let start = self.pages_len();
        let fences = self.pages() * 8 + CRC_LEN as u64;
        let queues = u64::from(self.queues) * QUEUE_LEN as u64 + CRC_LEN as u64;
        start..start + fences + queues
    }

    /// Length of the whole object.
    pub fn object_len(&self) -> u64 {
        self.summary_range().end + RUN_FOOTER_LEN as u64
    }
}

/// What a reader keeps of a run: where each page starts, and which queues
/// (and so topics) it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub footer: RunFooter,
    pub fences: Vec<u64>,
    pub queues: Vec<QueueEnd>,
}

impl RunSummary {
    /// Whether the run holds entries of `topic`.
    pub fn has_topic(&self, topic: u64) -> bool {
        let at = self.queues.partition_point(|q| q.topic < topic);
        self.queues.get(at).is_some_and(|q| q.topic == topic)
    }

    /// The pages that may hold entries filed under `hash`: equal hashes can
    /// run over a page boundary, so this is a range.
    pub fn pages_for(&self, hash: u64) -> Range<u64> {
        let end = self.fences.partition_point(|&f| f <= hash);
        if end == 0 {
            return 0..0;
        }
        let first = self.fences.partition_point(|&f| f < hash).saturating_sub(1);
        first as u64..end as u64
    }
}

/// Encodes a run. Callers sort and deduplicate the entries (a merge sorts
/// its inputs together); entries that are not get sorted here, in a copy.
pub fn encode_run(entries: &[RunEntry], mut queues: Vec<QueueEnd>) -> Bytes {
    let sorted;
    let entries = if entries.windows(2).all(|w| w[0] < w[1]) {
        entries
    } else {
        let mut copy = entries.to_vec();
        copy.sort_unstable();
        copy.dedup();
        sorted = copy;
        &sorted[..]
    };
    queues.sort_unstable();
    dedup_queues(&mut queues);
    let footer = RunFooter {
        entries: entries.len() as u64,
        queues: queues.len() as u32,
    };
    let mut out = BytesMut::with_capacity(footer.object_len() as usize);
    let mut fences = BytesMut::with_capacity(footer.pages() as usize * 8 + CRC_LEN);
    for page in entries.chunks(PAGE_ENTRIES) {
        let start = out.len();
        fences.put_u64_le(page[0].hash);
        for e in page {
            out.put_u64_le(e.hash);
            out.put_u64_le(e.topic);
            out.put_u32_le(e.queue);
            out.put_u64_le(e.offset);
        }
        let crc = crc32c::crc32c(&out[start..]);
        out.put_u32_le(crc);
    }
    let crc = crc32c::crc32c(&fences);
    fences.put_u32_le(crc);
    out.extend_from_slice(&fences);
    let start = out.len();
    for q in &queues {
        out.put_u64_le(q.topic);
        out.put_u32_le(q.queue);
        out.put_u64_le(q.end);
    }
    let crc = crc32c::crc32c(&out[start..]);
    out.put_u32_le(crc);
    let start = out.len();
    out.extend_from_slice(&RUN_MAGIC);
    out.put_u32_le(RUN_FORMAT_VERSION);
    out.put_u64_le(footer.entries);
    out.put_u32_le(footer.queues);
    out.put_u32_le(0);
    let crc = crc32c::crc32c(&out[start..]);
    out.put_u32_le(crc);
    out.freeze()
}

/// Keeps one end per queue, the furthest.
fn dedup_queues(queues: &mut Vec<QueueEnd>) {
    queues.dedup_by(|later, kept| {
        let same = (later.topic, later.queue) == (kept.topic, kept.queue);
        if same {
            kept.end = kept.end.max(later.end);
        }
        same
    });
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Splits `bytes` into its body and checks the crc32c at its end.
fn checked<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a [u8], RunFormatError> {
    let Some(body_len) = bytes.len().checked_sub(CRC_LEN) else {
        return Err(corrupt(what, format!("{} bytes, no checksum", bytes.len())));
    };
    let (body, crc) = bytes.split_at(body_len);
    let (stored, actual) = (le_u32(crc), crc32c::crc32c(body));
    if stored != actual {
        return Err(corrupt(
            what,
            format!("stored crc {stored:#010x}, computed {actual:#010x}"),
        ));
    }
    Ok(body)
}

/// Decodes the footer from the last [`RUN_FOOTER_LEN`] bytes of `tail`;
/// `object_len` is the length of the whole object.
pub fn decode_footer(tail: &[u8], object_len: u64) -> Result<RunFooter, RunFormatError> {
    let Some(start) = tail.len().checked_sub(RUN_FOOTER_LEN) else {
        return Err(corrupt("footer", format!("{} bytes", tail.len())));
    };
    let f = &tail[start..];
    if f[..8] != RUN_MAGIC {
        return Err(corrupt("footer magic", format!("found {:02x?}", &f[..8])));
    }
    checked(f, "footer")?;
    let version = le_u32(&f[8..]);
    if version != RUN_FORMAT_VERSION {
        return Err(RunFormatError::UnsupportedVersion { version });
    }
    let footer = RunFooter {
        entries: le_u64(&f[12..]),
        queues: le_u32(&f[20..]),
    };
    // Bounded first, so a corrupt count cannot overflow the layout's sums.
    if footer.entries > object_len / ENTRY_LEN as u64 || footer.object_len() != object_len {
        return Err(corrupt(
            "footer",
            format!(
                "{} entries and {} queues do not fit {object_len} bytes",
                footer.entries, footer.queues
            ),
        ));
    }
    Ok(footer)
}

/// Decodes the fences and queues read from [`RunFooter::summary_range`].
pub fn decode_summary(footer: RunFooter, bytes: &[u8]) -> Result<RunSummary, RunFormatError> {
    let range = footer.summary_range();
    if bytes.len() as u64 != range.end - range.start {
        return Err(corrupt("summary", format!("{} bytes", bytes.len())));
    }
    let fences_len = footer.pages() as usize * 8 + CRC_LEN;
    let (fences, queues) = bytes.split_at(fences_len);
    let fences = checked(fences, "fences")?
        .chunks_exact(8)
        .map(le_u64)
        .collect();
    let queues = checked(queues, "queues")?
        .chunks_exact(QUEUE_LEN)
        .map(|q| QueueEnd {
            topic: le_u64(q),
            queue: le_u32(&q[8..]),
            end: le_u64(&q[12..]),
        })
        .collect();
    Ok(RunSummary {
        footer,
        fences,
        queues,
    })
}

/// Decodes one page read from [`RunFooter::page_range`].
pub fn decode_page(bytes: &[u8]) -> Result<Vec<RunEntry>, RunFormatError> {
    let body = checked(bytes, "page")?;
    if body.len() % ENTRY_LEN != 0 {
        return Err(corrupt("page", format!("{} bytes of entries", body.len())));
    }
    Ok(body
        .chunks_exact(ENTRY_LEN)
        .map(|e| RunEntry {
            hash: le_u64(e),
            topic: le_u64(&e[8..]),
            queue: le_u32(&e[16..]),
            offset: le_u64(&e[20..]),
        })
        .collect())
}

/// Decodes a whole run: every entry, in order, and its queues.
pub fn decode_run(bytes: &[u8]) -> Result<(Vec<RunEntry>, Vec<QueueEnd>), RunFormatError> {
    let footer = decode_footer(bytes, bytes.len() as u64)?;
    let summary_range = footer.summary_range();
    let summary = decode_summary(
        footer,
        &bytes[summary_range.start as usize..summary_range.end as usize],
    )?;
    let mut entries = Vec::with_capacity(footer.entries as usize);
    for page in 0..footer.pages() {
        let r = footer.page_range(page);
        entries.extend(decode_page(&bytes[r.start as usize..r.end as usize])?);
    }
    Ok((entries, summary.queues))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn summary_of(run: &[u8]) -> RunSummary {
        let footer = decode_footer(run, run.len() as u64).unwrap();
        let r = footer.summary_range();
        decode_summary(footer, &run[r.start as usize..r.end as usize]).unwrap()
    }

    /// Every entry filed under `hash`, read the way a lookup reads them.
    fn lookup(run: &[u8], hash: u64) -> Vec<RunEntry> {
        let summary = summary_of(run);
        let mut out = Vec::new();
        for page in summary.pages_for(hash) {
            let r = summary.footer.page_range(page);
            let entries = decode_page(&run[r.start as usize..r.end as usize]).unwrap();
            out.extend(entries.into_iter().filter(|e| e.hash == hash));
        }
        out
    }

    fn entry() -> impl Strategy<Value = RunEntry> {
        // Few distinct hashes, so equal hashes run over page boundaries.
        (0u64..40, 0u64..4, 0u32..8, 0u64..10_000).prop_map(|(hash, topic, queue, offset)| {
            RunEntry {
                hash,
                topic,
                queue,
                offset,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip_and_every_hash_is_found(
            entries in proptest::collection::vec(entry(), 0..6000),
            ends in proptest::collection::vec((0u64..4, 0u32..8, 0u64..20_000), 0..20),
        ) {
            let queues: Vec<QueueEnd> = ends
                .iter()
                .map(|&(topic, queue, end)| QueueEnd { topic, queue, end })
                .collect();
            let run = encode_run(&entries, queues.clone());
            let mut want = entries.clone();
            want.sort_unstable();
            want.dedup();
            let (got, got_queues) = decode_run(&run).unwrap();
            prop_assert_eq!(&got, &want);
            let mut want_queues = queues;
            want_queues.sort_unstable();
            want_queues.reverse();
            // The furthest end of each queue, in (topic, queue) order.
            want_queues.dedup_by_key(|q| (q.topic, q.queue));
            want_queues.reverse();
            prop_assert_eq!(&got_queues, &want_queues);
            for hash in 0..41 {
                let expect: Vec<RunEntry> =
                    want.iter().filter(|e| e.hash == hash).copied().collect();
                prop_assert_eq!(lookup(&run, hash), expect);
            }
            let summary = summary_of(&run);
            for topic in 0..5 {
                prop_assert_eq!(
                    summary.has_topic(topic),
                    want_queues.iter().any(|q| q.topic == topic)
                );
            }
        }

        #[test]
        fn a_flipped_byte_is_always_detected(
            entries in proptest::collection::vec(entry(), 1..3000),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let run = encode_run(&entries, vec![QueueEnd { topic: 1, queue: 2, end: 3 }]);
            let mut bad = run.to_vec();
            let i = at.index(bad.len());
            bad[i] ^= 1 << bit;
            prop_assert!(decode_run(&bad).is_err(), "byte {} of {}", i, bad.len());
        }
    }

    #[test]
    fn an_empty_run_and_a_wrong_length_and_version() {
        let run = encode_run(&[], Vec::new());
        assert_eq!(run.len(), RUN_FOOTER_LEN + 2 * CRC_LEN);
        assert!(decode_run(&run).unwrap().0.is_empty());
        assert!(summary_of(&run).pages_for(7).is_empty());
        let err = decode_footer(&run, run.len() as u64 + 1).unwrap_err();
        assert!(err.to_string().contains("do not fit"), "{err}");
        let mut newer = run.to_vec();
        let f = newer.len() - RUN_FOOTER_LEN;
        newer[f + 8] = 2;
        let crc = crc32c::crc32c(&newer[f..f + 28]);
        newer[f + 28..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode_run(&newer),
            Err(RunFormatError::UnsupportedVersion { version: 2 })
        ));
    }

    #[test]
    fn hashes_separate_topics_and_kinds() {
        let a = entry_hash(1, ValueKind::Id, "m-1");
        assert_eq!(a, entry_hash(1, ValueKind::Id, "m-1"));
        assert_ne!(a, entry_hash(2, ValueKind::Id, "m-1"));
        assert_ne!(a, entry_hash(1, ValueKind::Key, "m-1"));
        // Fixed across builds: runs written by one version are read by the next.
        assert_eq!(
            entry_hash(7, ValueKind::Key, "order-1"),
            1_530_710_800_783_467_470
        );
    }
}
