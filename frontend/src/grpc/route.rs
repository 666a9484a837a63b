//! Route answers: the endpoints of this node and the message queues of a
//! topic, as QueryRoute and QueryAssignment give them.

use crate::grpc::caller::{Caller, GrpcState};
use crate::grpc::convert::message_type;
use crate::grpc::failure::Failure;
use crate::grpc::pb;

impl GrpcState {
    pub(crate) fn endpoints(&self) -> pb::Endpoints {
        let (host, port) = &self.advertised;
        let scheme = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => pb::AddressScheme::IPv4,
            Ok(std::net::IpAddr::V6(_)) => pb::AddressScheme::IPv6,
            Err(_) => pb::AddressScheme::DomainName,
        };
        pb::Endpoints {
            scheme: scheme as i32,
            addresses: vec![pb::Address {
                host: host.clone(),
                port: i32::from(*port),
            }],
        }
    }

    /// The message queues of topic `name` as a route answer.
    pub(crate) fn route(
        &self,
        caller: &Caller,
        asked: Option<pb::Resource>,
        name: &str,
    ) -> Result<Vec<pb::MessageQueue>, Failure> {
        let info = self.engine.topic_info(&caller.tenant, name)?;
        let resource = pb::Resource {
            resource_namespace: asked.map(|t| t.resource_namespace).unwrap_or_default(),
            name: info.name.clone(),
        };
        let broker = pb::Broker {
            name: self.engine.config().node_id.clone(),
            id: 0,
            endpoints: Some(self.endpoints()),
        };
        Ok((0..info.queues)
            .map(|q| pb::MessageQueue {
                topic: Some(resource.clone()),
                id: i32::try_from(q).unwrap_or(i32::MAX),
                permission: pb::Permission::ReadWrite as i32,
                broker: Some(broker.clone()),
                accept_message_types: vec![message_type(info.message_type) as i32],
            })
            .collect())
    }
}
