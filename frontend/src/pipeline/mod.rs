//! The one request pipeline both adapters ([`crate::http`] and
//! [`crate::grpc`]) run, so a request is admitted, limited and refused the
//! same way whichever protocol carries it:
//!
//! ```text
//!   authenticate ─ Gate::admit: credentials (or anonymous), the tenant's
//!        │         quotas, one request token, the request metered
//!   tenant ─────── Gate::act_as: the caller's own tenant, or another one
//!        │         named by a service admin
//!   permission ─── Caller::require
//!   quotas ─────── Caller::take / take_all / within / within_stored_bytes
//!   engine call ── e.g. publish::publish (stored-bytes limit, rates,
//!        │         the delayed-delivery loop)
//!   error ──────── ServiceError: one ErrorCode, rendered by each adapter
//!                  (HTTP status + JSON body, RocketMQ code + gRPC status)
//! ```
//!
//! The adapters keep only what their protocol needs: where the credentials
//! and the tenant's name are found, how a message is decoded, how an answer
//! is encoded.

mod caller;
mod error;
pub mod publish;
pub mod reply;

pub use caller::{Admitted, Caller, ConsumeBudget, Gate};
pub use error::ServiceError;
