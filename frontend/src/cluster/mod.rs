//! Cluster mode: nodes sharing one metadata namespace (etcd, TiKV), each
//! serving the tenants placed on it.

pub mod assign;
pub mod balance;
pub mod forget;
pub mod forward;
pub mod handed_over;
pub mod registry;
pub mod status;
