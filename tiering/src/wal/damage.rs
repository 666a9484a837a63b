//! What damage found in a WAL segment at startup means. Pure code, no I/O.
//!
//! The I/O thread writes a group of frames (at most
//! `group_commit_max_bytes`, or one frame larger than that) with one write
//! and one fdatasync, and starts the next group only after that sync. A
//! crash can therefore leave only the last group of the last segment partly
//! written, and nothing of that group was acknowledged:
//!
//! ```text
//!  last segment:  | synced groups ............ | last group |
//!                                              ^ damage here: a torn write, cut it
//!                         ^ damage here, more than one group before the end:
//!                           acknowledged records were damaged, refuse
//! ```
//!
//! A frame larger than a group is written alone, so the torn write can be
//! longer than a group: then damage with no whole record after it is torn
//! too. Its claimed length is not trusted, since the checksum that failed
//! covers it (one flipped bit there claims up to 64 MiB).
//!
//! Damage to records that are all in object storage already (below the
//! node's upload checkpoint) loses nothing: the WAL starts again past them.

use super::frame::{FRAME_HEADER_LEN, MAX_PAYLOAD_LEN};

/// Where recovery found damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub in_last_segment: bool,
    /// LSN of the first record that does not read back.
    pub at_lsn: u64,
    /// Where the damaged segment's file ends, as an LSN.
    pub segment_end_lsn: u64,
    /// Where the last segment's file ends, as an LSN.
    pub wal_end_lsn: u64,
    /// Whether a whole record starts after the damage (looked for only
    /// when more than a group follows it).
    pub record_after: bool,
}

/// The longest frame: the most one write of a single record can tear.
const MAX_FRAME: u64 = (FRAME_HEADER_LEN + MAX_PAYLOAD_LEN) as u64;

/// What recovery does about [`Damage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A write a crash cut short: cut the segment back to the damage.
    TornTail,
    /// Every byte from the damage to the end of the WAL is below the
    /// upload checkpoint: start the WAL again at the checkpoint.
    Uploaded,
    /// Acknowledged records were damaged: refuse to start, saying why.
    Refuse(String),
}

pub(crate) fn judge(damage: &Damage, uploaded_lsn: u64, group_max: u64) -> Verdict {
    if damage.wal_end_lsn <= uploaded_lsn {
        return Verdict::Uploaded;
    }
    let after = damage.segment_end_lsn.saturating_sub(damage.at_lsn);
    let one_write = after <= group_max || (after <= MAX_FRAME && !damage.record_after);
    if damage.in_last_segment && damage.at_lsn >= uploaded_lsn && one_write {
        return Verdict::TornTail;
    }
    let why = if !damage.in_last_segment {
        "it is not in the last segment, which is the only one a crash can leave \
         partly written"
            .to_string()
    } else if damage.at_lsn < uploaded_lsn {
        format!(
            "it is below LSN {uploaded_lsn}, which was durable and uploaded, so no crash \
             wrote it"
        )
    } else if damage.record_after {
        format!(
            "{after} bytes follow it, more than the {group_max} bytes of one group commit, \
             and whole records among them: no crash cut it short"
        )
    } else {
        format!("{after} bytes follow it, more than the longest record")
    };
    let uploaded = if uploaded_lsn > 0 {
        format!(" (records below LSN {uploaded_lsn} are in object storage)")
    } else {
        String::new()
    };
    Verdict::Refuse(format!(
        "{why}; cutting the WAL there would drop acknowledged records from LSN {} up to \
         {}{uploaded}. Restore the volume, or give those records up and start: strata check \
         --data-dir <data-dir> --cut-damage",
        damage.at_lsn.max(uploaded_lsn),
        damage.wal_end_lsn
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn damage(at_lsn: u64, segment_end_lsn: u64) -> Damage {
        Damage {
            in_last_segment: true,
            at_lsn,
            segment_end_lsn,
            wal_end_lsn: segment_end_lsn,
            record_after: true,
        }
    }

    #[test]
    fn damage_within_the_last_write_is_a_torn_tail() {
        assert_eq!(judge(&damage(9_000, 10_000), 0, 1_000), Verdict::TornTail);
        assert_eq!(
            judge(&damage(9_000, 10_000), 9_000, 1_000),
            Verdict::TornTail
        );
    }

    #[test]
    fn a_frame_larger_than_a_group_may_be_torn_anywhere_in_itself() {
        let mut d = damage(1_000, 10_000);
        assert!(matches!(judge(&d, 0, 1_000), Verdict::Refuse(_)));
        d.record_after = false;
        assert_eq!(judge(&d, 0, 1_000), Verdict::TornTail);
        // But no record is longer than MAX_FRAME.
        d.segment_end_lsn = d.at_lsn + MAX_FRAME + 1;
        d.wal_end_lsn = d.segment_end_lsn;
        let Verdict::Refuse(why) = judge(&d, 0, 1_000) else {
            panic!("must refuse");
        };
        assert!(why.contains("more than the longest record"), "{why}");
    }

    #[test]
    fn damage_followed_by_more_than_a_write_is_refused() {
        let Verdict::Refuse(why) = judge(&damage(1_000, 10_000), 0, 1_000) else {
            panic!("must refuse");
        };
        assert!(why.contains("9000 bytes follow it"), "{why}");
        assert!(why.contains("LSN 1000 up to 10000"), "{why}");
        assert!(why.contains("--cut-damage"), "{why}");
    }

    #[test]
    fn damage_below_the_checkpoint_was_no_crash() {
        let Verdict::Refuse(why) = judge(&damage(9_500, 10_000), 9_800, 1_000) else {
            panic!("must refuse");
        };
        assert!(why.contains("below LSN 9800"), "{why}");
        assert!(why.contains("from LSN 9800 up to 10000"), "{why}");
    }

    #[test]
    fn damage_in_an_older_segment_is_refused() {
        let mut d = damage(9_900, 10_000);
        d.in_last_segment = false;
        d.wal_end_lsn = 20_000;
        assert!(matches!(judge(&d, 0, 1_000), Verdict::Refuse(_)));
    }

    #[test]
    fn damage_to_uploaded_records_only_restarts_the_wal() {
        let mut d = damage(1_000, 10_000);
        d.in_last_segment = false;
        assert_eq!(judge(&d, 10_000, 1_000), Verdict::Uploaded);
        assert_eq!(judge(&d, 50_000, 1_000), Verdict::Uploaded);
    }
}
