//! Hard protocol limits that no configuration can raise. Configurable limits
//! (message size, batch size, request size) live in the server config; these
//! bound what the storage formats can represent at all.

/// Longest topic or group name, in bytes (RocketMQ allows 127).
pub const MAX_NAME_LEN: usize = 127;
/// Longest message key or tag, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest message id a producer may give, in bytes.
pub const MAX_MESSAGE_ID_LEN: usize = 128;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 255;
/// Most user properties on one message.
pub const MAX_PROPERTIES: usize = 64;
/// Most properties a stored message holds: its user properties and the
/// reserved (`__mq.`) ones the server adds (keys, message group, born time
/// and host, a dead letter's origin, ...), which a user's 64 must not
/// crowd out.
pub const MAX_STORED_PROPERTIES: usize = MAX_PROPERTIES + 32;
/// Longest property name, in bytes.
pub const MAX_PROPERTY_NAME_LEN: usize = 255;
/// Longest property value, in bytes.
pub const MAX_PROPERTY_VALUE_LEN: usize = 16 * 1024;
/// Most queues one topic may have.
pub const MAX_QUEUES_PER_TOPIC: u32 = 1024;
/// Largest message body the storage format accepts (the configured limit is lower).
pub const MAX_BODY_LEN: usize = 64 * 1024 * 1024;

/// Why `key` cannot be a message key a client publishes, if it cannot:
/// 1 to [`MAX_KEY_LEN`] bytes, no whitespace (RocketMQ joins a message's
/// keys with spaces) and no control characters.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Some(format!("a key must be 1 to {MAX_KEY_LEN} bytes long"));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "key {key:?} holds whitespace or a control character"
        ));
    }
    None
}

/// Why `tag` cannot be a message tag a client publishes, if it cannot:
/// 1 to [`MAX_TAG_LEN`] bytes, no `|` (`||` joins tags in filter
/// expressions), no whitespace (a filter cannot name such a tag) and no
/// control characters.
pub fn tag_problem(tag: &str) -> Option<String> {
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Some(format!("a tag must be 1 to {MAX_TAG_LEN} bytes long"));
    }
    if tag.contains('|') {
        return Some(format!(
            "tag {tag:?} contains `|`, which joins tags in filter expressions"
        ));
    }
    if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "tag {tag:?} holds whitespace or a control character, which no filter can name"
        ));
    }
    None
}

/// Why `name` cannot be a property name a client sets, if it cannot: 1 to
/// [`MAX_PROPERTY_NAME_LEN`] bytes without control characters.
pub fn property_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_PROPERTY_NAME_LEN {
        return Some(format!(
            "property names must be 1 to {MAX_PROPERTY_NAME_LEN} bytes long"
        ));
    }
    if name.chars().any(char::is_control) {
        return Some(format!("property name {name:?} holds a control character"));
    }
    None
}

/// Why `group` cannot be a FIFO message group, if it cannot: 1 to
/// [`MAX_KEY_LEN`] bytes without control characters.
pub fn message_group_problem(group: &str) -> Option<String> {
    if group.is_empty() || group.len() > MAX_KEY_LEN {
        return Some(format!(
            "a message group must be 1 to {MAX_KEY_LEN} bytes long"
        ));
    }
    if group.chars().any(char::is_control) {
        return Some(format!("message group {group:?} holds a control character"));
    }
    None
}

/// Why `id` cannot be a message id a client gives, if it cannot: no
/// whitespace or control characters (the length is the engine's limit).
pub fn id_problem(id: &str) -> Option<String> {
    id.chars()
        .any(|c| c.is_whitespace() || c.is_control())
        .then(|| format!("message id {id:?} holds whitespace or a control character"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_fields() {
        assert_eq!(key_problem("order-1"), None);
        assert_eq!(key_problem(&"k".repeat(MAX_KEY_LEN)), None);
        for bad in [
            "",
            "has space",
            "tab\t",
            "nul\0",
            &"k".repeat(MAX_KEY_LEN + 1),
        ] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(tag_problem("TagA"), None);
        for bad in ["", "a|b", "a b", "\n", &"t".repeat(MAX_TAG_LEN + 1)] {
            assert!(tag_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(property_name_problem("color"), None);
        assert_eq!(property_name_problem("with space"), None);
        for bad in ["", "a\u{1}", &"p".repeat(MAX_PROPERTY_NAME_LEN + 1)] {
            assert!(property_name_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(message_group_problem("order 7"), None);
        for bad in ["", "g\u{1}", &"g".repeat(MAX_KEY_LEN + 1)] {
            assert!(message_group_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(id_problem("MSG0001"), None);
        assert!(id_problem("a\nb").is_some());
    }
}
