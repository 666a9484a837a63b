//! What a client of Strata's RocketMQ 5 API needs, without the server: the
//! generated protocol ([`pb`]: messages, the MessagingService client and
//! server stubs) and request signing ([`signing`]). The server's gRPC
//! adapter, the load tester and tests share it, so none of them has to link
//! the engine to speak the protocol.

pub mod signing;

/// Types, client and server generated from `proto/` (package
/// `apache.rocketmq.v2`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("apache.rocketmq.v2");
}
