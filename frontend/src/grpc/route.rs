//! Route answers: the endpoints of this node and the message queues of a
//! topic, as QueryRoute and QueryAssignment give them.

use strata_common::ErrorCode;

use crate::cluster::balance::Route;
use crate::grpc::caller::{Caller, GrpcState};
use crate::grpc::convert::message_type;
use crate::grpc::failure::Failure;
use crate::grpc::pb;

impl GrpcState {
    pub(crate) fn endpoints(&self) -> pb::Endpoints {
        let (host, port) = &self.advertised;
        endpoints(host.clone(), *port)
    }

    /// The message queues of topic `name` as a route answer. In cluster
    /// mode a topic of a tenant served by another node is answered with
    /// that node's endpoints (from the catalog), so clients talk to it
    /// directly; a tenant moving between nodes is UNAVAILABLE (retried).
    /// With `grpc.route_addr` set, every answer names that address.
    pub(crate) async fn route(
        &self,
        caller: &Caller,
        asked: Option<pb::Resource>,
        name: &str,
    ) -> Result<Vec<pb::MessageQueue>, Failure> {
        let (topic, queues, kind, broker) = match self.cluster_route(&caller.tenant) {
            None => {
                let info = self.engine.topic_info(&caller.tenant, name)?;
                let broker = pb::Broker {
                    name: self.engine.config().node_id.clone(),
                    id: 0,
                    endpoints: Some(self.endpoints()),
                };
                (info.name, info.queues, info.message_type, broker)
            }
            Some(Route::Node {
                node, grpc_addr, ..
            }) => {
                if strata_common::is_hidden_topic(name) {
                    return Err(Failure::service(
                        ErrorCode::NotFound,
                        format!("topic {name} not found"),
                    ));
                }
                let record = self
                    .credentials
                    .catalog()
                    .get_topic(&caller.tenant, name)
                    .await
                    .map_err(|e| Failure::service(ErrorCode::Unavailable, e))?
                    .ok_or_else(|| {
                        Failure::service(ErrorCode::NotFound, format!("topic {name} not found"))
                    })?;
                let (host, port) = crate::config::advertised(&grpc_addr).unwrap_or_default();
                let broker = pb::Broker {
                    name: node,
                    id: 0,
                    endpoints: Some(endpoints(host, port)),
                };
                (record.name, record.queues, record.message_type, broker)
            }
            Some(_) => {
                return Err(Failure::service(
                    ErrorCode::Unavailable,
                    format!(
                        "tenant {} is moving between nodes (or not placed yet); retry in a moment",
                        caller.tenant
                    ),
                ));
            }
        };
        let broker = match &self.route_endpoint {
            Some((host, port)) => pb::Broker {
                endpoints: Some(endpoints(host.clone(), *port)),
                ..broker
            },
            None => broker,
        };
        let resource = pb::Resource {
            resource_namespace: asked.map(|t| t.resource_namespace).unwrap_or_default(),
            name: topic,
        };
        Ok((0..queues)
            .map(|q| pb::MessageQueue {
                topic: Some(resource.clone()),
                id: i32::try_from(q).unwrap_or(i32::MAX),
                permission: pb::Permission::ReadWrite as i32,
                broker: Some(broker.clone()),
                accept_message_types: vec![message_type(kind) as i32],
            })
            .collect())
    }

    /// In cluster mode, for a tenant this node does not serve: where it is.
    fn cluster_route(&self, tenant: &str) -> Option<Route> {
        let balancer = self.cluster.as_ref()?;
        match balancer.route(tenant) {
            Route::Here => None,
            other => Some(other),
        }
    }
}

fn endpoints(host: String, port: u16) -> pb::Endpoints {
    let scheme = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => pb::AddressScheme::IPv4,
        Ok(std::net::IpAddr::V6(_)) => pb::AddressScheme::IPv6,
        Err(_) => pb::AddressScheme::DomainName,
    };
    pb::Endpoints {
        scheme: scheme as i32,
        addresses: vec![pb::Address {
            host,
            port: i32::from(port),
        }],
    }
}
