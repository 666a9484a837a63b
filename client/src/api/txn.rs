//! Transactions over HTTP: `/v1/topics/{topic}/transactions`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct BeganJson {
    pub transaction_id: String,
    pub message_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OpenTransactionJson {
    pub transaction_id: String,
    pub message_id: String,
    pub created_ms: i64,
    /// Check-backs counted so far (sent to gRPC producers, or due with no
    /// producer to ask).
    pub checks: u32,
    /// When the next check is due; after the last one the transaction is
    /// rolled back.
    pub next_check_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OpenTransactionsJson {
    pub transactions: Vec<OpenTransactionJson>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EndedJson {
    pub transaction_id: String,
    /// "committed" or "rolled_back".
    pub outcome: String,
}
