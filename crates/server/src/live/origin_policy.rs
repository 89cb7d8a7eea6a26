//! Which browser pages may use the server. Without this, a web page from any origin opened in
//! the user's browser could list the cameras, download a recording, watch live over WHEP and
//! take over a push slot (every answer carried `Access-Control-Allow-Origin: *`), and a domain
//! of the attacker's re-pointed at 127.0.0.1 (DNS rebinding) could do the same as our own origin.
//!
//! Every request passes three checks, before any handler:
//! - **Host**: an IP address, `localhost` (and `*.localhost`), this machine's name (and
//!   `name.local`), or one of `server.allowed_hosts` — a rebound domain is none of them.
//! - **Fetch metadata**: a request a browser marks `Sec-Fetch-Site: cross-site` or `same-site`
//!   (another port is another origin) is refused, unless its `Origin` is one of
//!   `server.allowed_origins` or it is the user following a link to a UI page.
//! - **Origin**, for browsers that send no fetch metadata: a foreign `Origin` may not change
//!   anything (POST, PUT, PATCH, DELETE) or open a WebSocket.
//!
//! Clients that are not browsers (scripts, producers, `lockstep measure`, players) send neither
//! header and pass. CORS is granted to `server.allowed_origins` only, by name, never `*`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::{ApiError, AppState};

/// The names and origins the server accepts beside its own.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Host names (lowercase, no port).
    hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`, lowercase) granted CORS.
    origins: Vec<String>,
}

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it; `cors` is the foreign origin to grant in the answer, if any.
    Allow {
        cors: Option<String>,
    },
    Refuse(String),
}

impl OriginPolicy {
    /// `allowed_hosts` and `allowed_origins` as configured (already validated), plus this
    /// machine's own name.
    pub fn new(allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let mut hosts: Vec<String> = allowed_hosts.iter().map(|h| h.to_lowercase()).collect();
        if let Some(name) = machine_name() {
            hosts.push(format!("{name}.local"));
            hosts.push(name);
        }
        OriginPolicy {
            hosts,
            origins: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_lowercase())
                .collect(),
        }
    }

    pub fn judge(&self, method: &Method, path: &str, headers: &HeaderMap) -> Verdict {
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let host = text(header::HOST);
        if let Some(host) = host {
            if !self.answers_to(host) {
                return Verdict::Refuse(format!(
                    "Host {host:?} is not a name this server answers to: it answers to IP \
                     addresses, localhost, this machine's name and server.allowed_hosts \
                     (a defence against DNS rebinding)"
                ));
            }
        }
        let origin = text(header::ORIGIN).map(|o| o.trim_end_matches('/').to_lowercase());
        let same_origin = match (&origin, host) {
            (Some(origin), Some(host)) => authority(origin) == Some(host.to_lowercase().as_str()),
            _ => false,
        };
        let granted = origin
            .as_ref()
            .filter(|o| !same_origin && self.origins.contains(o))
            .cloned();
        if same_origin || granted.is_some() {
            return Verdict::Allow { cors: granted };
        }
        let foreign = || {
            Verdict::Refuse(format!(
                "a page from {} may not use this server (same origin only; trusted origins go in \
                 server.allowed_origins)",
                origin.as_deref().unwrap_or("another site")
            ))
        };
        let site = text(HeaderName::from_static("sec-fetch-site"));
        if matches!(site, Some("cross-site" | "same-site")) {
            // The user following a link to the UI from elsewhere is fine; anything a page does
            // by itself (fetch, WebSocket, media, a navigation into the API) is not.
            let navigation = text(HeaderName::from_static("sec-fetch-mode")) == Some("navigate");
            let api = path.starts_with("/api/") || path == "/metrics";
            if navigation && *method == Method::GET && !api {
                return Verdict::Allow { cors: None };
            }
            return foreign();
        }
        let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let upgrade = headers.contains_key(header::UPGRADE);
        if origin.is_some() && (changes || upgrade) {
            return foreign();
        }
        Verdict::Allow { cors: None }
    }

    fn answers_to(&self, host: &str) -> bool {
        let name = strip_port(host).to_lowercase();
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        literal.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.hosts.contains(&name)
    }
}

/// `host[:port]` of an origin (`scheme://host[:port]`).
fn authority(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(_, rest)| rest)
}

/// `host` of `host[:port]`, `[v6]` of `[v6]:port`.
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.find(']') {
        return &host[..=end];
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// This machine's name, lowercase, as the LAN knows it.
pub(crate) fn machine_name() -> Option<String> {
    #[cfg(unix)]
    let name = rustix::system::uname()
        .nodename()
        .to_str()
        .ok()
        .map(str::to_owned);
    #[cfg(not(unix))]
    let name = std::env::var("COMPUTERNAME").ok();
    name.map(|n| n.to_lowercase()).filter(|n| !n.is_empty())
}

/// The middleware: refuses with 403 and the reason, grants CORS to allowed origins.
pub async fn check(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let verdict = state
        .origins
        .judge(request.method(), request.uri().path(), request.headers());
    match verdict {
        Verdict::Refuse(reason) => {
            tracing::info!(
                "refused {} {}: {reason}",
                request.method(),
                request.uri().path()
            );
            ApiError::new(StatusCode::FORBIDDEN, reason).into_response()
        }
        Verdict::Allow { cors } => {
            let mut response = next.run(request).await;
            if let Some(origin) = cors.and_then(|o| HeaderValue::from_str(&o).ok()) {
                grant_cors(response.headers_mut(), origin);
            }
            response
        }
    }
}

/// What a WHEP/WHIP player served from an allowed origin needs to read our answers.
fn grant_cors(h: &mut HeaderMap, origin: HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, HeaderValue::from_static("origin"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization, if-match"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("location, link, etag, x-lockstep-stream"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn policy() -> OriginPolicy {
        OriginPolicy::new(&["cams.lan".into()], &["https://dash.lan:8443".into()])
    }

    fn allowed(method: Method, path: &str, pairs: &[(&str, &str)]) -> bool {
        matches!(
            policy().judge(&method, path, &headers(pairs)),
            Verdict::Allow { .. }
        )
    }

    #[test]
    fn hosts_a_rebound_domain_cannot_pass_for() {
        for host in [
            "127.0.0.1:8350",
            "[::1]:8350",
            "localhost:1",
            "a.localhost",
            "CAMS.lan:80",
        ] {
            assert!(
                allowed(Method::GET, "/api/cameras", &[("host", host)]),
                "{host}"
            );
        }
        for host in [
            "evil.example:8350",
            "127.0.0.1.evil.example",
            "cams.lan.evil",
        ] {
            let verdict = policy().judge(&Method::GET, "/", &headers(&[("host", host)]));
            assert!(
                matches!(&verdict, Verdict::Refuse(r) if r.contains("allowed_hosts")),
                "{host}: {verdict:?}"
            );
        }
    }

    #[test]
    fn a_foreign_page_may_read_nothing_change_nothing_and_open_no_socket() {
        let host = ("host", "127.0.0.1:8350");
        let other_port = ("origin", "http://127.0.0.1:9999");
        let cross = ("sec-fetch-site", "same-site");
        assert!(!allowed(
            Method::GET,
            "/api/cameras",
            &[host, other_port, cross]
        ));
        assert!(!allowed(
            Method::GET,
            "/api/recordings/a/export.mp4",
            &[host, cross]
        ));
        assert!(!allowed(
            Method::POST,
            "/api/whip/avatar",
            &[host, other_port]
        ));
        assert!(!allowed(
            Method::GET,
            "/api/ws",
            &[host, other_port, ("upgrade", "websocket")]
        ));
        // A navigation to the UI from a link elsewhere is the user's own doing.
        let nav = [
            host,
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
        ];
        assert!(allowed(Method::GET, "/", &nav));
        assert!(!allowed(Method::GET, "/api/cameras", &nav));
    }

    #[test]
    fn our_own_pages_and_non_browsers_pass_and_trusted_origins_get_cors() {
        let host = ("host", "127.0.0.1:8350");
        let own = [
            host,
            ("origin", "http://127.0.0.1:8350"),
            ("sec-fetch-site", "same-origin"),
            ("upgrade", "websocket"),
        ];
        assert!(allowed(Method::GET, "/api/ws", &own));
        assert!(allowed(Method::POST, "/api/whep/door", &[host]));
        let trusted = [
            host,
            ("origin", "https://dash.lan:8443"),
            ("sec-fetch-site", "cross-site"),
        ];
        assert_eq!(
            policy().judge(&Method::POST, "/api/whep/door", &headers(&trusted)),
            Verdict::Allow {
                cors: Some("https://dash.lan:8443".into())
            }
        );
    }
}
