//! Garbage collection: objects that no range references.
//!
//! An object is garbage once no committed range points into it (every range
//! was merged away or expired) or when it never got committed (an upload or
//! merge crashed between PUT and commit). Young objects are spared for a
//! grace period, in case their commit is still on its way.
//!
//! Objects written by another node that may still commit are spared at any
//! age: each node names its objects `<prefix><node>/...` and collects only
//! its own (under the lock its commits take, so never one whose commit is
//! on its way) and those of nodes that left or were adopted more than a
//! grace ago (by then the queues of an adopted node were claimed by others,
//! whose raised epochs refuse its commits). The grace alone could not
//! protect a node paused between a commit's freshness check and the
//! metadata store applying it.

use std::collections::HashSet;

/// How the names of uploaded and merged objects end.
pub const OBJECT_SUFFIX: &str = ".seg";

/// Whether an object written `age` ago may still be committed: garbage
/// collection deletes unreferenced objects older than `grace` (judged from
/// before it reads the references), so a commit needs the object younger
/// than half of it, the other half being for the commit itself. A zero
/// grace (one writer per store, as in tests) turns the rule off.
pub fn commit_in_time(age: std::time::Duration, grace: std::time::Duration) -> bool {
    grace.is_zero() || age <= grace / 2
}

/// An object as listed from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub last_modified_ms: i64,
}

/// The node that wrote an object named `<prefix><node>/<rest>`, if the
/// name has that shape.
pub fn writer(key: &str) -> Option<&str> {
    let (_prefix, rest) = key.split_once('/')?;
    let (node, _) = rest.split_once('/')?;
    Some(node).filter(|n| !n.is_empty())
}

/// Whether `key` has the shape of an object this namespace writes under a
/// top-level folder: `<top>/<writer>/<file><suffix>` (or `<top>/<file><suffix>`,
/// from before objects were named by writer). Another namespace whose
/// prefix nests inside ours (`seg`, or `a/merged` under `a`) has its
/// objects one level deeper or more, or without the suffix (its store
/// mark), so a listing of our folder that meets them leaves them alone: a
/// black-box run lost a nested namespace's data to its parent's GC.
pub fn ours(key: &str, suffix: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    let Some(file) = parts.last() else {
        return false;
    };
    (parts.len() == 2 || parts.len() == 3)
        && parts.iter().all(|p| !p.is_empty())
        && file.len() > suffix.len()
        && file.ends_with(suffix)
}

/// Keys of listed objects to delete: unreferenced, older than the grace,
/// and not written by one of the `spared` nodes (other nodes that may
/// still commit what they wrote).
pub fn garbage(
    listed: &[Listed],
    referenced: &HashSet<String>,
    spared: &HashSet<String>,
    now_ms: i64,
    grace_ms: i64,
) -> Vec<String> {
    listed
        .iter()
        .filter(|o| ours(&o.key, OBJECT_SUFFIX))
        .filter(|o| !referenced.contains(&o.key))
        .filter(|o| o.last_modified_ms <= now_ms.saturating_sub(grace_ms))
        .filter(|o| writer(&o.key).is_none_or(|w| !spared.contains(w)))
        .map(|o| o.key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_unreferenced_objects_go() {
        let listed = vec![
            Listed {
                key: "seg/n/a.seg".into(),
                last_modified_ms: 0,
            },
            Listed {
                key: "seg/n/b.seg".into(),
                last_modified_ms: 0,
            },
            Listed {
                key: "seg/n/c.seg".into(),
                last_modified_ms: 990,
            },
        ];
        let referenced: HashSet<String> = ["seg/n/a.seg".to_string()].into();
        let none = HashSet::new();
        assert_eq!(
            garbage(&listed, &referenced, &none, 1000, 100),
            ["seg/n/b.seg"]
        );
        assert_eq!(
            garbage(&listed, &referenced, &none, 1000, 0),
            ["seg/n/b.seg", "seg/n/c.seg"]
        );
    }

    #[test]
    fn objects_of_spared_writers_stay_at_any_age() {
        let old = |key: &str| Listed {
            key: key.into(),
            last_modified_ms: 0,
        };
        let listed = [
            old("seg/node-a/1-2-x.seg"),
            old("merged/node-a/y.seg"),
            old("seg/node-b/1-2-z.seg"),
            old("merged/node-c/w.seg"),
            old("seg/unnamed.seg"),
        ];
        let spared: HashSet<String> = ["node-a".to_string()].into();
        assert_eq!(
            garbage(&listed, &HashSet::new(), &spared, i64::MAX, 100),
            [
                "seg/node-b/1-2-z.seg",
                "merged/node-c/w.seg",
                "seg/unnamed.seg"
            ]
        );
    }

    #[test]
    fn objects_of_a_namespace_nested_inside_ours_are_never_garbage() {
        let old = |key: &str| Listed {
            key: key.into(),
            last_modified_ms: 0,
        };
        // Ours (prefix ""), then a namespace with prefix "seg", one with
        // "merged", and one with "seg/x", as our listings of `seg/` and
        // `merged/` meet them.
        let listed = [
            old("seg/node-1/00000000000000000000-00000000000000000010-ab.seg"),
            old("merged/node-1/cd.seg"),
            old("seg/strata-store-mark"),
            old("seg/seg/node-1/00000000000000000000-00000000000000000010-ef.seg"),
            old("seg/merged/node-1/01.seg"),
            old("seg/index/node-1/0000000000000001.idx"),
            old("merged/seg/node-1/00-10-ab.seg"),
            old("merged/strata-store-mark"),
            old("seg/x/strata-store-mark"),
            old("seg/x/seg/node-1/00-10-ab.seg"),
        ];
        assert_eq!(
            garbage(&listed, &HashSet::new(), &HashSet::new(), i64::MAX, 100),
            [
                "seg/node-1/00000000000000000000-00000000000000000010-ab.seg",
                "merged/node-1/cd.seg"
            ]
        );
    }

    #[test]
    fn our_names_have_two_or_three_parts_and_the_suffix() {
        assert!(ours("seg/n/a.seg", ".seg"));
        assert!(ours("seg/a.seg", ".seg"));
        assert!(ours("index/n/0001.idx", ".idx"));
        assert!(!ours("seg/n/a.idx", ".seg"));
        assert!(!ours("seg/n/.seg", ".seg"));
        assert!(!ours("seg//a.seg", ".seg"));
        assert!(!ours("seg/a/b/c.seg", ".seg"));
        assert!(!ours("a.seg", ".seg"));
        assert!(!ours("seg/strata-store-mark", ".seg"));
    }

    #[test]
    fn the_writer_is_the_second_part_of_the_name() {
        assert_eq!(writer("seg/node-a/0-1-ab.seg"), Some("node-a"));
        assert_eq!(writer("merged/n1/ab.seg"), Some("n1"));
        assert_eq!(writer("seg/ab.seg"), None);
        assert_eq!(writer("seg//ab.seg"), None);
    }
}
