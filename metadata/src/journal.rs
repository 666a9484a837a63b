//! The byte format of the embedded store's commit journal (no I/O here).
//!
//! [`crate::RedbStore`] makes a group of commits durable by appending one
//! record to its journal and syncing that, instead of syncing the B-tree;
//! the B-tree is synced every few thousand groups (a checkpoint), after
//! which the journal is written again from its start, over records the
//! checkpoint made redundant. Replaying the records numbered after the
//! last checkpoint rebuilds exactly the acknowledged state.
//!
//! ```text
//! record   := body_len: u32 LE | crc32c(body): u32 LE | body
//! body     := seq: u64 LE | count: u32 LE | mutation × count
//! mutation := 0x01 | key_len: u32 LE | key | value_len: u32 LE | value   (put)
//!           | 0x02 | key_len: u32 LE | key                                (delete)
//! ```
//!
//! `seq` numbers groups from 1 and increases by one per record. A record
//! that is cut short or fails its checksum ends the journal: it was being
//! written when the process died (its commits were never acknowledged), or
//! it is the zeros ahead of the writer or an older record partly
//! overwritten. Older records that are whole carry numbers the checkpoint
//! already covers. Each append is synced before the next, so a torn one is
//! never followed by a record of a later group: when one is (see
//! [`later_record`]), the end was damage to acknowledged commits.

use crate::store::Mutation;

const PUT: u8 = 0x01;
const DELETE: u8 = 0x02;
/// `body_len` and the checksum.
const HEADER: usize = 8;

/// One group of commits, as replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub mutations: Vec<Mutation>,
}

/// What a journal's bytes hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub records: Vec<Record>,
    /// Bytes of whole, valid records; anything after is a torn tail.
    pub valid_len: usize,
}

/// A key, value or whole record too long for the format's 32-bit lengths.
#[derive(Debug, thiserror::Error)]
#[error("a journal record holds lengths below 4 GiB; this group has a {what} of {len} bytes")]
pub struct TooLarge {
    pub what: &'static str,
    pub len: usize,
}

/// Appends the record of group `seq` to `out`; on error `out` may hold
/// part of it.
pub fn encode_record<'a>(
    seq: u64,
    mutations: impl IntoIterator<Item = &'a Mutation>,
    out: &mut Vec<u8>,
) -> Result<(), TooLarge> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(&seq.to_le_bytes());
    let count_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut count: u32 = 0;
    for m in mutations {
        count += 1;
        match m {
            Mutation::Put { key, value } => {
                out.push(PUT);
                put_bytes(out, key, "key")?;
                put_bytes(out, value, "value")?;
            }
            Mutation::Delete { key } => {
                out.push(DELETE);
                put_bytes(out, key, "key")?;
            }
        }
    }
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    let body_len = len32(out.len() - start - HEADER, "record")?;
    let crc = crc32c::crc32c(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn len32(len: usize, what: &'static str) -> Result<u32, TooLarge> {
    u32::try_from(len).map_err(|_| TooLarge { what, len })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), TooLarge> {
    out.extend_from_slice(&len32(bytes.len(), what)?.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Decodes every whole, valid record from the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some((record, len)) = decode_one(&bytes[at..]) {
        records.push(record);
        at += len;
    }
    Decoded {
        records,
        valid_len: at,
    }
}

/// The first whole record past `from` of a group numbered above
/// `after_seq`, with its offset. A record takes at least 20 bytes, which
/// bounds the numbers that can follow; checking the number before the
/// checksum keeps the byte-by-byte search cheap.
pub fn later_record(bytes: &[u8], from: usize, after_seq: u64) -> Option<(usize, u64)> {
    let most = (bytes.len() / (HEADER + 12)) as u64 + 1;
    (from.saturating_add(1)..bytes.len()).find_map(|at| {
        let rest = &bytes[at..];
        let seq = u64::from_le_bytes(rest.get(HEADER..HEADER + 8)?.try_into().ok()?);
        if seq <= after_seq || seq > after_seq.saturating_add(most) {
            return None;
        }
        let (record, _) = decode_one(rest)?;
        Some((at, record.seq))
    })
}

/// The record at the start of `bytes` and its length, if whole and valid.
/// Zeros are not a record: their checksum matches (that of no bytes is 0)
/// but a body must hold at least its number and count.
fn decode_one(bytes: &[u8]) -> Option<(Record, usize)> {
    let body_len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..HEADER)?.try_into().ok()?);
    let body = bytes.get(HEADER..HEADER.checked_add(body_len)?)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let mut r = Reader { bytes: body };
    let seq = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let count = r.u32()?;
    let mut mutations = Vec::new();
    for _ in 0..count {
        let kind = r.take(1)?[0];
        let key = r.bytes()?.to_vec();
        mutations.push(match kind {
            PUT => Mutation::Put {
                key,
                value: r.bytes()?.to_vec(),
            },
            DELETE => Mutation::Delete { key },
            _ => return None,
        });
    }
    if !r.bytes.is_empty() {
        return None;
    }
    Some((Record { seq, mutations }, HEADER + body_len))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mutation() -> impl Strategy<Value = Mutation> {
        let bytes = || proptest::collection::vec(any::<u8>(), 1..40);
        prop_oneof![
            (bytes(), proptest::collection::vec(any::<u8>(), 0..200))
                .prop_map(|(key, value)| Mutation::Put { key, value }),
            bytes().prop_map(|key| Mutation::Delete { key }),
        ]
    }

    fn groups() -> impl Strategy<Value = Vec<Vec<Mutation>>> {
        proptest::collection::vec(proptest::collection::vec(mutation(), 1..8), 1..6)
    }

    fn journal(groups: &[Vec<Mutation>]) -> (Vec<u8>, Vec<usize>) {
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        for (i, g) in groups.iter().enumerate() {
            encode_record(i as u64 + 1, g, &mut out).unwrap();
            ends.push(out.len());
        }
        (out, ends)
    }

    proptest! {
        #[test]
        fn records_round_trip(groups in groups()) {
            let (bytes, _) = journal(&groups);
            let decoded = decode(&bytes);
            prop_assert_eq!(decoded.valid_len, bytes.len());
            let expected: Vec<Record> = groups
                .iter()
                .enumerate()
                .map(|(i, g)| Record { seq: i as u64 + 1, mutations: g.clone() })
                .collect();
            prop_assert_eq!(decoded.records, expected);
        }

        /// A crash can stop the last append anywhere: every whole record
        /// before the cut is kept and nothing after it.
        #[test]
        fn a_torn_tail_keeps_exactly_the_whole_records(groups in groups(), cut in any::<prop::sample::Index>()) {
            let (bytes, ends) = journal(&groups);
            let cut = cut.index(bytes.len());
            let decoded = decode(&bytes[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            prop_assert_eq!(decoded.records.len(), whole);
            prop_assert_eq!(decoded.valid_len, if whole == 0 { 0 } else { ends[whole - 1] });
        }

        /// A flipped bit in a record ends the journal at that record, and
        /// the records of later groups after it are found.
        #[test]
        fn a_corrupt_record_ends_the_journal(groups in groups(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (mut bytes, ends) = journal(&groups);
            let at = at.index(bytes.len());
            bytes[at] ^= 1 << bit;
            let decoded = decode(&bytes);
            let before = ends.iter().filter(|&&e| e <= at).count();
            prop_assert_eq!(decoded.records.len(), before);
            let later = later_record(&bytes, decoded.valid_len, before as u64);
            if before + 1 < groups.len() {
                prop_assert_eq!(later, Some((ends[before], before as u64 + 2)));
            } else {
                prop_assert_eq!(later, None);
            }
        }

        /// A torn append has no later group after it, whatever follows:
        /// zeros ahead of the writer, then older records (of groups the
        /// last checkpoint covered, written before it).
        #[test]
        fn a_torn_append_has_no_later_group_after_it(groups in groups(), cut in any::<prop::sample::Index>(), zeros in 0usize..300) {
            let checkpointed = groups.len() as u64;
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            for (i, g) in groups.iter().enumerate() {
                encode_record(checkpointed + i as u64 + 1, g, &mut bytes).unwrap();
                ends.push(bytes.len());
            }
            let cut = cut.index(bytes.len());
            let whole = ends.iter().filter(|&&e| e <= cut).count() as u64;
            let mut torn = bytes[..cut].to_vec();
            torn.resize(cut + zeros, 0);
            torn.extend_from_slice(&journal(&groups).0);
            let decoded = decode(&torn);
            prop_assert_eq!(later_record(&torn, decoded.valid_len, checkpointed + whole), None);
        }
    }

    #[test]
    fn zeros_ahead_of_the_writer_are_not_a_record() {
        let mut bytes = Vec::new();
        let put = Mutation::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        };
        encode_record(7, [&put], &mut bytes).unwrap();
        let end = bytes.len();
        bytes.resize(end + 4096, 0);
        let decoded = decode(&bytes);
        assert_eq!(decoded.records.len(), 1);
        assert_eq!(decoded.valid_len, end);
    }

    #[test]
    fn an_empty_journal_has_no_records() {
        assert_eq!(
            decode(&[]),
            Decoded {
                records: vec![],
                valid_len: 0
            }
        );
    }
}
