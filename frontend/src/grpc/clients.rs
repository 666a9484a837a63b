//! Receives waiting for messages, by client, so that a client's
//! NotifyClientTermination ends its long polls at once instead of letting
//! them run out. Clients are told apart by the `x-mq-client-id` header that
//! the official SDKs send on every call, within the caller's tenant: one
//! tenant cannot end another's receives by guessing an id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tonic::metadata::MetadataMap;

/// Header carrying the client's id (set by the official SDKs).
pub const CLIENT_ID_HEADER: &str = "x-mq-client-id";

/// The client id of a request, if it has one.
pub fn client_id(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get(CLIENT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

type Key = (String, String);

#[derive(Debug)]
struct Waiting {
    gone: watch::Sender<bool>,
    receives: usize,
}

/// Clients with receives in progress.
#[derive(Debug, Default)]
pub struct Clients {
    waiting: Mutex<HashMap<Key, Waiting>>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers one receive of `client` in `tenant` until the guard drops.
    pub fn receiving(self: &Arc<Self>, tenant: &str, client: &str) -> Receiving {
        let key = (tenant.to_string(), client.to_string());
        let mut map = self.lock();
        let entry = map.entry(key.clone()).or_insert_with(|| Waiting {
            gone: watch::Sender::new(false),
            receives: 0,
        });
        entry.receives += 1;
        Receiving {
            clients: self.clone(),
            gone: entry.gone.subscribe(),
            key,
        }
    }

    /// Ends the waiting receives of `client` in `tenant`; returns how many.
    pub fn terminate(&self, tenant: &str, client: &str) -> usize {
        let map = self.lock();
        match map.get(&(tenant.to_string(), client.to_string())) {
            Some(w) => {
                w.gone.send_replace(true);
                w.receives
            }
            None => 0,
        }
    }

    /// Clients with receives in progress.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One receive in progress; see [`Clients::receiving`].
#[derive(Debug)]
pub struct Receiving {
    clients: Arc<Clients>,
    gone: watch::Receiver<bool>,
    key: Key,
}

impl Receiving {
    /// Completes once the client announced its termination.
    pub async fn gone(&mut self) {
        if self.gone.wait_for(|g| *g).await.is_err() {
            // The sender lives as long as any receive of the client.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        let mut map = self.clients.lock();
        if let Some(w) = map.get_mut(&self.key) {
            w.receives -= 1;
            if w.receives == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // bounds the waits on real time
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn termination_ends_that_clients_receives_only() {
        let clients = Arc::new(Clients::default());
        let mut a = clients.receiving("t1", "c1");
        let mut other_tenant = clients.receiving("t2", "c1");
        assert_eq!(clients.len(), 2);
        assert_eq!(clients.terminate("t1", "c1"), 1);
        tokio::time::timeout(Duration::from_secs(5), a.gone())
            .await
            .expect("terminated receive ends");
        let still = tokio::time::timeout(Duration::from_millis(50), other_tenant.gone()).await;
        assert!(
            still.is_err(),
            "another tenant's client of the same id waits on"
        );
        drop(a);
        drop(other_tenant);
        assert!(clients.is_empty(), "entries go with their last receive");
        assert_eq!(clients.terminate("t1", "c1"), 0);
    }
}
