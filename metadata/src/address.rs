//! Where a distributed metadata backend is: `etcd://` and `tikv://` URLs.
//! Parsed whether or not the backend is built in, so a node can say which
//! build it needs instead of "unknown URL".

use crate::store::MetaError;

/// The namespace used when a URL names none.
pub const DEFAULT_NAMESPACE: &str = "strata";

/// Where an `EtcdStore` connects, parsed from
/// `etcd://host:port[,host:port...][/namespace]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdAddress {
    /// `host:port` of each member, as given.
    pub endpoints: Vec<String>,
    /// Prefix of every key (without the trailing `/`); `strata` by default.
    pub namespace: String,
}

impl EtcdAddress {
    /// The namespace used when the URL names none.
    pub const DEFAULT_NAMESPACE: &'static str = DEFAULT_NAMESPACE;

    /// Parses `etcd://h1:2379,h2:2379/namespace`.
    pub fn parse(url: &str) -> Result<Self, MetaError> {
        let (endpoints, namespace) = parse_cluster_url(url, "etcd")?;
        Ok(Self {
            endpoints,
            namespace,
        })
    }
}

/// Where a `TikvStore` connects: the PD (placement driver) endpoints, parsed
/// from `tikv://pd-host:port[,pd-host:port...][/namespace]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TikvAddress {
    /// `host:port` of each PD member, as given.
    pub pd_endpoints: Vec<String>,
    /// Prefix of every key (without the trailing `/`); `strata` by default.
    pub namespace: String,
}

impl TikvAddress {
    /// Parses `tikv://pd1:2379,pd2:2379/namespace`.
    pub fn parse(url: &str) -> Result<Self, MetaError> {
        let (pd_endpoints, namespace) = parse_cluster_url(url, "tikv")?;
        Ok(Self {
            pd_endpoints,
            namespace,
        })
    }
}

/// `<scheme>://h1:p1,h2:p2[/namespace]` → endpoints and namespace.
fn parse_cluster_url(url: &str, scheme: &str) -> Result<(Vec<String>, String), MetaError> {
    let bad = |why: &str| {
        MetaError::Invalid(format!(
            "metadata URL {url:?}: {why}; expected {scheme}://host:port[,host:port...][/namespace]"
        ))
    };
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(|| bad(&format!("it does not start with {scheme}://")))?;
    let (hosts, namespace) = match rest.split_once('/') {
        Some((hosts, ns)) => (hosts, ns.trim_end_matches('/')),
        None => (rest, ""),
    };
    let endpoints: Vec<String> = hosts.split(',').map(str::trim).map(String::from).collect();
    for e in &endpoints {
        let port = e.rsplit_once(':').map(|(_, p)| p);
        if e.is_empty() || port.is_none_or(|p| p.parse::<u16>().is_err()) {
            return Err(bad(&format!("endpoint {e:?} is not host:port")));
        }
    }
    let namespace = if namespace.is_empty() {
        DEFAULT_NAMESPACE.to_string()
    } else {
        namespace.to_string()
    };
    Ok((endpoints, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_and_without_a_namespace() {
        let a = EtcdAddress::parse("etcd://127.0.0.1:2379,h2:2380/prod/eu").unwrap();
        assert_eq!(a.endpoints, ["127.0.0.1:2379", "h2:2380"]);
        assert_eq!(a.namespace, "prod/eu");
        let b = EtcdAddress::parse("etcd://h:1/").unwrap();
        assert_eq!(b.namespace, EtcdAddress::DEFAULT_NAMESPACE);
        let t = TikvAddress::parse("tikv://pd1:2379,pd2:2379/prod").unwrap();
        assert_eq!(t.pd_endpoints, ["pd1:2379", "pd2:2379"]);
        assert_eq!(t.namespace, "prod");
        for bad in [
            "http://h:1",
            "etcd://",
            "etcd://h",
            "etcd://h:x",
            "etcd://h:1,,h:2",
            "etcd://h:99999",
            "etcdx://h:1",
        ] {
            let e = EtcdAddress::parse(bad).unwrap_err().to_string();
            assert!(e.contains("etcd://host:port"), "{bad}: {e}");
        }
        let e = TikvAddress::parse("etcd://h:1").unwrap_err().to_string();
        assert!(e.contains("tikv://host:port"), "{e}");
    }
}
