//! Messages as producers send them and as the store returns them.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A topic's permanent identity. Names can be deleted and reused; ids never are,
/// so WAL records of a deleted topic can never be mistaken for a new one's.
pub type TopicId = u64;

/// One queue of one topic: the unit of ordering and of ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueueKey {
    pub topic: TopicId,
    pub queue: u32,
}

impl QueueKey {
    pub fn new(topic: TopicId, queue: u32) -> Self {
        Self { topic, queue }
    }
}

impl std::fmt::Display for QueueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.topic, self.queue)
    }
}

/// A message as a producer hands it over.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Server-unique id; the server fills it in when the producer gives none.
    pub id: String,
    pub key: Option<String>,
    pub tag: Option<String>,
    /// User properties, in the order the producer gave them.
    pub properties: Vec<(String, String)>,
    pub body: Bytes,
}

impl Message {
    /// Bytes this message occupies in memory and on the wire, roughly:
    /// the number quotas and caches count (billing counts
    /// [`Message::metered_size`]).
    pub fn approx_size(&self) -> usize {
        self.id.len()
            + self.key.as_ref().map_or(0, String::len)
            + self.tag.as_ref().map_or(0, String::len)
            + self
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self.body.len()
    }
}

impl Message {
    /// Bytes a tenant is billed for, published or delivered: the id, the
    /// keys, the tag, the message group, the producer's own properties
    /// (names and values) and the body. The system properties the service
    /// keeps beside them (`__mq.*`: where and when a message was born, its
    /// delivery time, its dead-letter origin, a transaction's state) are not
    /// billed, so a message costs the same however it was sent and however
    /// it was stored.
    pub fn metered_size(&self) -> usize {
        let keys: usize = self.keys().map(str::len).sum();
        let mut group = 0;
        let mut user = 0;
        for (name, value) in &self.properties {
            if name == MESSAGE_GROUP_PROPERTY {
                group = value.len();
            } else if !name.starts_with(RESERVED_PROPERTY_PREFIX) {
                user += name.len() + value.len();
            }
        }
        self.id.len()
            + keys
            + self.tag.as_ref().map_or(0, String::len)
            + group
            + user
            + self.body.len()
    }
}

/// Prefix of the properties Strata sets itself (system properties);
/// producers may not set them.
pub const RESERVED_PROPERTY_PREFIX: &str = "__mq.";

/// The property holding a message's FIFO message group: messages of one
/// group in a FIFO topic are delivered to a consumer group in order.
pub const MESSAGE_GROUP_PROPERTY: &str = "__mq.group";

/// The property holding all of a message's keys, space-separated, when it
/// has more than one (RocketMQ messages may carry several; `key` is then
/// the first).
pub const KEYS_PROPERTY: &str = "__mq.keys";

impl Message {
    /// The FIFO message group, if the message has one.
    pub fn message_group(&self) -> Option<&str> {
        self.property(MESSAGE_GROUP_PROPERTY)
    }

    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every key the message is found by: all of [`KEYS_PROPERTY`] when
    /// it has several, else its `key`.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let (all, one) = match self.property(KEYS_PROPERTY) {
            Some(all) => (Some(all), None),
            None => (None, self.key.as_deref()),
        };
        all.into_iter()
            .flat_map(|all| all.split(' ').filter(|k| !k.is_empty()))
            .chain(one)
    }
}

/// A message read back from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub offset: u64,
    /// When the server made the message durable (milliseconds since the epoch).
    pub timestamp_ms: i64,
    pub message: Message,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_all_of_the_keys_property_or_the_key() {
        let mut m = Message {
            key: Some("a".into()),
            ..Message::default()
        };
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a"]);
        m.properties.push((KEYS_PROPERTY.into(), "a b  c".into()));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(Message::default().keys().count(), 0);
    }

    #[test]
    fn the_metered_size_leaves_out_system_properties() {
        let mut m = Message {
            id: "id-1".into(),
            key: Some("ka".into()),
            tag: Some("red".into()),
            properties: vec![("color".into(), "blue".into())],
            body: Bytes::from_static(b"hello"),
        };
        let billed = 4 + 2 + 3 + (5 + 4) + 5;
        assert_eq!(m.metered_size(), billed);
        // What the service keeps beside a message costs nothing...
        m.properties
            .push(("__mq.born_ms".into(), "1796641151144".into()));
        m.properties
            .push(("__mq.deliver_at_ms".into(), "1796641151144".into()));
        assert_eq!(m.metered_size(), billed);
        // ...but every key and the message group are the producer's.
        m.properties.push((KEYS_PROPERTY.into(), "kbb ka".into()));
        m.properties
            .push((MESSAGE_GROUP_PROPERTY.into(), "g1".into()));
        assert_eq!(m.metered_size(), billed + 3 + 2);
    }
}
