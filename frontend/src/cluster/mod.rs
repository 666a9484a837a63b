//! Cluster mode: nodes sharing one metadata namespace (etcd), each serving
//! the tenants placed on it.

pub mod registry;
pub mod status;
