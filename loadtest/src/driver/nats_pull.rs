//! Reading one queue from NATS JetStream through an ephemeral pull
//! consumer (see [`super::nats::NatsConn::create_consumer`]).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::RequestError;
use super::nats::NatsConn;

/// One pull request the server may still be filling.
#[derive(Debug)]
struct Pull {
    expires_at: Instant,
    remaining: u64,
}

/// Reads one queue through an ephemeral pull consumer, keeping a pull
/// request open at all times. Requests are tracked by count *and* by
/// expiry time: a request the server ended without a status message (or
/// whose status is still in flight) never stalls the reader past its
/// expiry; at worst one extra request is made, which is harmless.
#[derive(Debug)]
pub struct PullReader {
    conn: NatsConn,
    topic: String,
    consumer: String,
    pulls: VecDeque<Pull>,
}

impl PullReader {
    pub fn new(conn: NatsConn, topic: &str, consumer: String) -> Self {
        Self {
            conn,
            topic: topic.to_string(),
            consumer,
            pulls: VecDeque::new(),
        }
    }

    /// Up to `batch` bodies in order, waiting up to `wait` for the first.
    pub async fn next_batch(
        &mut self,
        batch: u32,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, RequestError> {
        let expires = wait.max(Duration::from_millis(500));
        let now = Instant::now();
        // Requests about to expire no longer count: ask again in time.
        self.pulls
            .retain(|p| p.expires_at > now + Duration::from_millis(50));
        let outstanding: u64 = self.pulls.iter().map(|p| p.remaining).sum();
        if outstanding < u64::from(batch / 2).max(1) {
            self.conn
                .pull(&self.topic, &self.consumer, batch, expires)
                .await?;
            self.pulls.push_back(Pull {
                expires_at: now + expires,
                remaining: u64::from(batch),
            });
        }
        let mut out = Vec::new();
        let mut wait_next = wait;
        while out.len() < batch as usize {
            let Some(m) = self.conn.next_pulled(wait_next).await? else {
                break;
            };
            match m.status() {
                None => {
                    // Messages fill the oldest open request first.
                    if let Some(front) = self.pulls.front_mut() {
                        front.remaining = front.remaining.saturating_sub(1);
                        if front.remaining == 0 {
                            self.pulls.pop_front();
                        }
                    }
                    out.push(m.payload);
                    // Then take what is already buffered, without waiting.
                    wait_next = Duration::ZERO;
                }
                // Idle heartbeat or flow control: nothing to count.
                Some(100) => {}
                // Expired / no messages / ended: the oldest request is over.
                Some(404 | 408 | 409) => {
                    self.pulls.pop_front();
                    if out.is_empty() {
                        break;
                    }
                }
                Some(status) => return Err(RequestError::Refused(format!("nats {status}"))),
            }
        }
        Ok(out)
    }
}
