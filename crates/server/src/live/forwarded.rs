//! The client behind a reverse proxy. A request that comes from one of `server.trusted_proxies`
//! is attributed to the address its `X-Forwarded-For` names (the rightmost entry that is not
//! itself a trusted proxy), so that the audit log, login limits and per-address WebSocket quotas
//! see the person, not the proxy. From anyone else the header is ignored: it is whatever the
//! client wrote.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

pub fn client_address(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> SocketAddr {
    if !trusted.contains(&peer.ip()) {
        return peer;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage from the client's side of the chain: the proxy is all we can vouch for.
            return peer;
        };
        if !trusted.contains(&ip) {
            return SocketAddr::new(ip, 0);
        }
    }
    peer
}

/// `203.0.113.7`, `203.0.113.7:5000`, `2001:db8::1` or `[2001:db8::1]:5000`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().expect("value"));
        headers
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let proxy: SocketAddr = "10.0.0.2:40000".parse().expect("addr");
        let trusted = [
            "10.0.0.2".parse().expect("ip"),
            "10.0.0.3".parse().expect("ip"),
        ];
        let client = |h: &str, t: &[IpAddr]| client_address(proxy, &headers(h), t).ip().to_string();
        assert_eq!(client("203.0.113.7", &trusted), "203.0.113.7");
        // A client's own forged entry sits left of what the proxies appended.
        assert_eq!(
            client("1.2.3.4, 203.0.113.7, 10.0.0.3", &trusted),
            "203.0.113.7"
        );
        assert_eq!(client("[2001:db8::1]:5000", &trusted), "2001:db8::1");
        assert_eq!(client("not an address", &trusted), "10.0.0.2");
        // The same header from an address that is not a trusted proxy: ignored.
        assert_eq!(client("203.0.113.7", &[]), "10.0.0.2");
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}
