//! Hard protocol limits that no configuration can raise. Configurable limits
//! (message size, batch size, request size) live in the server config; these
//! bound what the storage formats can represent at all.

/// Longest topic or group name, in bytes (RocketMQ allows 127).
pub const MAX_NAME_LEN: usize = 127;
/// Longest message key or tag, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
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
