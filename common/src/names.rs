//! Naming rules for topics and consumer groups.
//!
//! Names are 1..=127 bytes of ASCII letters, digits, `-` and `_` (RocketMQ's
//! rule minus `%` and `|`, which RocketMQ reserves for namespaces and
//! system topics). The restricted alphabet also lets metadata keys use `/`
//! as a separator without escaping.

use crate::limits::MAX_NAME_LEN;

/// Why a name was refused, written for the person who chose it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} name is {len} bytes; the limit is {MAX_NAME_LEN}")]
    TooLong { kind: &'static str, len: usize },
    #[error(
        "{kind} name {name:?} contains {ch:?}; only ASCII letters, digits, '-' and '_' are allowed"
    )]
    BadChar {
        kind: &'static str,
        name: String,
        ch: char,
    },
}

/// Checks a topic name.
pub fn validate_topic(name: &str) -> Result<(), NameError> {
    validate("topic", name)
}

/// Checks a consumer group name.
pub fn validate_group(name: &str) -> Result<(), NameError> {
    validate("group", name)
}

fn validate(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            kind,
            len: name.len(),
        });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(NameError::BadChar {
            kind,
            name: name.to_string(),
            ch,
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
    fn refuses_bad_names_with_specific_reason() {
        assert!(matches!(validate_topic(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            validate_group(&"x".repeat(128)),
            Err(NameError::TooLong { len: 128, .. })
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
