//! Strata's top layer: configuration, the HTTP/JSON API, the server runner
//! and the `strata` command-line tool.

pub mod cli;
pub mod client;
pub mod config;
pub mod http;
pub mod metering;
pub mod server;
pub mod telemetry;

pub use config::Config;
pub use server::{Running, ServerError, start};
