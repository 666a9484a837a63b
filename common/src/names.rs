//! Naming rules for topics, consumer groups and node ids.
//!
//! Names are 1..=127 bytes of ASCII letters, digits, `-` and `_` (RocketMQ's
//! rule minus `%` and `|`, which RocketMQ reserves for namespaces and
//! system topics). The restricted alphabet also lets metadata keys use `/`
//! as a separator without escaping. Node ids, which also name object
//! store paths (`seg/<node>/...`), are 1..=64 bytes that may also hold `.`
//! (host names) but start with a letter or digit (no `.` or `..` segment).

use crate::limits::MAX_NAME_LEN;

/// Why a name was refused, written for the person who chose it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} name is {len} bytes; the limit is {max}")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "{kind} name {name:?} contains {ch:?}; only ASCII letters, digits, {allowed} are allowed"
    )]
    BadChar {
        kind: &'static str,
        name: String,
        ch: char,
        allowed: &'static str,
    },
    #[error("{kind} name {name:?} must start with an ASCII letter or digit")]
    BadStart { kind: &'static str, name: String },
    #[error("{kind} name {name:?} starts with {prefix:?}, which is reserved for the service's own")]
    Reserved {
        kind: &'static str,
        name: String,
        prefix: &'static str,
    },
}

/// Longest node id accepted.
pub const MAX_NODE_ID_LEN: usize = 64;

/// Checks a topic name.
pub fn validate_topic(name: &str) -> Result<(), NameError> {
    validate("topic", name)
}

/// What a group's dead-letter topic adds to the group's name.
pub const DEAD_LETTER_SUFFIX: &str = "-DLQ";

/// Longest group name: its dead-letter topic's name must be a topic name.
pub const MAX_GROUP_NAME_LEN: usize = MAX_NAME_LEN - DEAD_LETTER_SUFFIX.len();

/// Checks a consumer group name. A group's dead-letter topic is named
/// after it, so names that would make that topic too long for a topic
/// name, or a hidden one, are refused.
pub fn validate_group(name: &str) -> Result<(), NameError> {
    check(
        "group",
        name,
        MAX_GROUP_NAME_LEN,
        &['-', '_'],
        "'-' and '_'",
    )?;
    if crate::is_hidden_topic(name) {
        return Err(NameError::Reserved {
            kind: "group",
            name: name.to_string(),
            prefix: crate::SYSTEM_TOPIC_PREFIX,
        });
    }
    Ok(())
}

/// Checks a node id.
pub fn validate_node_id(name: &str) -> Result<(), NameError> {
    let kind = "node id";
    check(
        kind,
        name,
        MAX_NODE_ID_LEN,
        &['-', '_', '.'],
        "'-', '_' and '.'",
    )?;
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(NameError::BadStart {
            kind,
            name: name.to_string(),
        });
    }
    Ok(())
}

fn validate(kind: &'static str, name: &str) -> Result<(), NameError> {
    check(kind, name, MAX_NAME_LEN, &['-', '_'], "'-' and '_'")
}

/// 1..=`max_len` bytes of ASCII letters, digits and `extra` (`allowed`
/// says which, for the error).
fn check(
    kind: &'static str,
    name: &str,
    max_len: usize,
    extra: &[char],
    allowed: &'static str,
) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > max_len {
        return Err(NameError::TooLong {
            kind,
            len: name.len(),
            max: max_len,
        });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(c)))
    {
        return Err(NameError::BadChar {
            kind,
            name: name.to_string(),
            ch,
            allowed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_typical_names() {
        for ok in ["orders", "a", "Order_Events-2", &"x".repeat(127)] {
            assert_eq!(validate_topic(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn node_ids_may_hold_dots_but_not_start_with_one() {
        for ok in ["node-1", "ip-10-0-0-1.ec2.internal", "N_2", &"a".repeat(64)] {
            assert_eq!(validate_node_id(ok), Ok(()), "{ok}");
        }
        assert!(matches!(
            validate_node_id(&"a".repeat(65)),
            Err(NameError::TooLong {
                len: 65,
                max: 64,
                ..
            })
        ));
        for bad in [".", "..", "-n"] {
            assert!(
                matches!(validate_node_id(bad), Err(NameError::BadStart { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            validate_node_id("a/b"),
            Err(NameError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            validate_topic("a.b"),
            Err(NameError::BadChar { ch: '.', .. })
        ));
    }

    #[test]
    fn refuses_bad_names_with_specific_reason() {
        assert!(matches!(validate_topic(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            validate_group(&"x".repeat(128)),
            Err(NameError::TooLong { len: 128, .. })
        ));
        // A group's dead-letter topic must be a topic name too.
        let longest = "x".repeat(MAX_GROUP_NAME_LEN);
        assert_eq!(validate_group(&longest), Ok(()));
        assert_eq!(
            validate_topic(&format!("{longest}{DEAD_LETTER_SUFFIX}")),
            Ok(())
        );
        assert!(matches!(
            validate_group(&format!("{longest}x")),
            Err(NameError::TooLong {
                len: 124,
                max: 123,
                ..
            })
        ));
        assert!(matches!(
            validate_topic("a/b"),
            Err(NameError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            validate_topic("tópico"),
            Err(NameError::BadChar { ch: 'ó', .. })
        ));
    }

    proptest! {
        #[test]
        fn valid_names_never_contain_separators(name in "\\PC{0,140}") {
            if validate_topic(&name).is_ok() {
                prop_assert!(!name.contains('/'));
                prop_assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN);
            }
        }
    }
}
