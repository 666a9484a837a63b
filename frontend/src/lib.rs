//! Strata's top layer: the request [`pipeline`] and its two protocol adapters
//! (HTTP/JSON in [`http`], RocketMQ 5 gRPC in [`grpc`]), configuration, the server runner and the `strata`
//! command-line tool.

pub mod adopt;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod disk_space;
pub mod grpc;
pub mod http;
pub mod metering;
pub mod pipeline;
pub mod separate_compactor;
pub mod server;
pub mod serving;
pub mod telemetry;

pub use config::Config;
pub use server::{Running, ServerError, start};
