//! What the server reads from a request before it knows who is calling: the route table's
//! requirement for any method and path, the credentials in any headers (bearer token, session
//! cookie), the client behind a trusted proxy (`X-Forwarded-For`), and permission and camera
//! lists as an admin types them. Invariants: no panic; a route outside `/api/` and `/metrics`
//! is public or needs nothing beyond what `/api/` routes need; a credential found is a
//! substring of the headers; a proxy's client is the peer unless the peer is trusted.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

use lockstep::auth::permission::{grant, Permissions};
use lockstep::auth::{need, presented, Need};
use lockstep::live::forwarded::client_address;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\n');
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    if let Ok(method) = Method::from_bytes(method.as_bytes()) {
        let needed = need(&method, path);
        // The table reads a path with or without its leading slashes.
        let bare = path.trim_start_matches('/');
        if !bare.starts_with("api/") && bare != "metrics" && bare != "api" {
            assert!(
                matches!(needed, Need::Public | Need::SignedIn),
                "{method} {path}: {needed:?}"
            );
        }
    }
    let mut headers = HeaderMap::new();
    for line in parts.by_ref().take(16) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let all: String = headers
        .values()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("\n");
    let (bearer, cookie) = presented(&headers);
    for found in [bearer, cookie].into_iter().flatten() {
        assert!(!found.is_empty() && all.contains(found));
    }
    let peer = SocketAddr::from(([10, 0, 0, 2], 4000));
    let trusted: [IpAddr; 1] = [peer.ip()];
    let untrusted = client_address(peer, &headers, &[]);
    assert_eq!(untrusted, peer);
    let _ = client_address(peer, &headers, &trusted);
    let rest: Vec<&str> = parts.collect();
    let list = rest.first().copied();
    let _ = Permissions::parse(list.unwrap_or(""));
    let _ = Permissions::role(list.unwrap_or(""));
    let _ = grant(list, None, rest.get(1).copied());
});
