//! The JSON bodies of Strata's HTTP API that clients read and send, shared
//! by the server (which writes them), the `strata` CLI and the load tester
//! (which read them), so the three cannot drift apart.

pub mod admin;
pub mod groups;
pub mod lookup;
pub mod messages;
pub mod pop;
pub mod status;
pub mod topics;
pub mod txn;
pub mod usage;
