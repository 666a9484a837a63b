//! The safety rule: this tool only ever sends load to the local machine.
//! Every server URL goes through [`loopback_url`] before any request is made.

use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use reqwest::Url;

/// Parses `text` as an `http://` URL whose host is loopback: an address in
/// 127.0.0.0/8, `::1`, or the name `localhost`. Anything else is refused.
pub fn loopback_url(text: &str) -> Result<Url> {
    let url = Url::parse(text.trim()).with_context(|| {
        format!("--server {text:?} is not a URL (expected e.g. http://127.0.0.1:8080)")
    })?;
    if url.scheme() != "http" {
        bail!(
            "--server {text:?}: only plain http:// is supported (loopback targets only), not {}://",
            url.scheme()
        );
    }
    // The URL parser normalises IP literals ("127.1" becomes "127.0.0.1",
    // IPv6 is bracketed), so the text below is canonical.
    let Some(host) = url.host_str() else {
        bail!("--server {text:?} has no host");
    };
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let allowed = match literal.parse::<IpAddr>() {
        Ok(ip) => is_loopback(ip),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    if !allowed {
        bail!(
            "refusing to load --server {text:?}: host {host} is not loopback; \
             strata-loadtest only targets 127.0.0.0/8, ::1 or localhost"
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("--server {text:?}: credentials in the URL are not supported");
    }
    Ok(url)
}

/// Resolves the host of a URL accepted by [`loopback_url`] and checks that
/// every address it names is loopback (a `localhost` entry in the hosts file
/// could point elsewhere).
pub async fn check_resolves_to_loopback(url: &Url) -> Result<()> {
    let host = url.host_str().context("URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    if addrs.is_empty() {
        bail!("{host} resolves to no address");
    }
    if let Some(bad) = addrs.iter().find(|a| !is_loopback(a.ip())) {
        bail!("refusing to load {url}: {host} resolves to {bad}, which is not loopback");
    }
    Ok(())
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3:9",
            "http://localhost:8080/",
            "http://LOCALHOST",
            "http://[::1]:8080",
        ] {
            assert!(loopback_url(ok).is_ok(), "{ok} refused");
        }
    }

    #[test]
    fn refuses_non_loopback() {
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.10:8080",
            "http://0.0.0.0:8080",
            "http://128.0.0.1:8080",
            "http://[::]:8080",
            "http://[2001:db8::1]:8080",
            "http://example.com:8080",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "https://127.0.0.1:8443",
            "ftp://127.0.0.1",
            "http://user:pw@127.0.0.1",
            "127.0.0.1:8080",
            "not a url",
        ] {
            let err = loopback_url(bad).expect_err(bad);
            assert!(err.to_string().contains("--server"), "{bad}: {err}");
        }
        let err = loopback_url("http://10.1.1.1:80").expect_err("remote");
        assert!(err.to_string().contains("not loopback"), "{err}");
    }

    #[test]
    fn mapped_v4_loopback_is_loopback() {
        assert!(is_loopback("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(!is_loopback("::ffff:10.0.0.1".parse().expect("ip")));
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let url = loopback_url("http://localhost:1").expect("loopback");
        check_resolves_to_loopback(&url).await.expect("loopback");
    }
}
