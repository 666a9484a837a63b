//! The JSON bodies of Strata's HTTP API that clients read and send, shared
//! by the server (which writes them), the `strata` CLI and the load tester
//! (which read them), so the three cannot drift apart.

pub mod status;
pub mod topics;
