//! Garbage collection: objects that no range references.
//!
//! An object is garbage once no committed range points into it (every range
//! was merged away or expired) or when it never got committed (an upload or
//! merge crashed between PUT and commit). Young objects are spared for a
//! grace period, in case their commit is still on its way.

use std::collections::HashSet;

/// An object as listed from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub last_modified_ms: i64,
}

/// Keys of listed objects to delete.
pub fn garbage(
    listed: &[Listed],
    referenced: &HashSet<String>,
    now_ms: i64,
    grace_ms: i64,
) -> Vec<String> {
    listed
        .iter()
        .filter(|o| !referenced.contains(&o.key))
        .filter(|o| o.last_modified_ms <= now_ms.saturating_sub(grace_ms))
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
                key: "a".into(),
                last_modified_ms: 0,
            },
            Listed {
                key: "b".into(),
                last_modified_ms: 0,
            },
            Listed {
                key: "c".into(),
                last_modified_ms: 990,
            },
        ];
        let referenced: HashSet<String> = ["a".to_string()].into();
        assert_eq!(garbage(&listed, &referenced, 1000, 100), ["b"]);
        assert_eq!(garbage(&listed, &referenced, 1000, 0), ["b", "c"]);
    }
}
