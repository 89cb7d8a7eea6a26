//! The HTTP accept loop. Every connection is counted against a cap for the whole server and
//! one per client address, and a request whose header has not fully arrived within
//! [`HEADER_TIMEOUT`] — a client that sends half a header, or keeps a connection idle between
//! requests — is closed. axum's own `serve` has neither (hyper's header timeout only runs with a
//! timer, which it does not set): 20,400 idle connections once took every file descriptor, and a
//! half-sent header held its connection for minutes. After an upgrade a WebSocket is no longer
//! HTTP: its own heartbeat and idle timeout govern it (`ws.rs`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::forwarded::client_address;
use super::tls::Tls;
use super::ws::ConnectionLimits;

/// A request's header must be complete this long after the connection became ready for it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections an address may hold beyond its WebSocket quota, so that its page's requests
/// still go through while it holds every socket it may.
const PER_IP_HEADROOM: u32 = 32;
/// After an accept error (out of file descriptors), wait this long before accepting again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How many connections may be open.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    all: Arc<Semaphore>,
    per_ip: Arc<ConnectionLimits>,
}

impl HttpLimits {
    /// `max_connections` in all; per address the WebSocket quota plus some headroom.
    pub fn new(max_connections: u32, max_websockets_per_ip: u32) -> Self {
        HttpLimits {
            all: Arc::new(Semaphore::new(max_connections as usize)),
            per_ip: ConnectionLimits::new(max_websockets_per_ip.saturating_add(PER_IP_HEADROOM)),
        }
    }
}

/// Serves `router` on `listener` until the task is dropped; `options` is applied to every
/// accepted connection (`listener::connection_options`). With `tls`, connections are HTTPS,
/// and one that speaks plain HTTP to the port is redirected to HTTPS.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<Tls>,
    trusted_proxies: Arc<[IpAddr]>,
    mut options: impl FnMut(&mut TcpStream) + Send + 'static,
) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("HTTP accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let Ok(global) = limits.all.clone().try_acquire_owned() else {
            let reason = "the server has as many connections open as it takes \
                          (server.max_connections)";
            refuse(stream, "503 Service Unavailable", reason);
            continue;
        };
        // A trusted proxy carries many clients: only the global cap applies to it (their
        // WebSockets are still counted per client, by the address it names).
        let per_ip = if trusted_proxies.contains(&peer.ip()) {
            None
        } else {
            match limits.per_ip.admit(peer.ip()) {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let reason = format!(
                        "{} already holds as many connections as one address may \
                         (server.max_connections_per_ip + {PER_IP_HEADROOM})",
                        peer.ip()
                    );
                    refuse(stream, "429 Too Many Requests", &reason);
                    continue;
                }
            }
        };
        options(&mut stream);
        let router = router.clone();
        let tls = tls.clone();
        let connection = Connection {
            peer,
            router,
            trusted_proxies: trusted_proxies.clone(),
        };
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, connection).await,
                Some(tls) => serve_tls(stream, connection, tls).await,
            }
            drop((global, per_ip));
        });
    }
}

/// One connection on the HTTPS port: a TLS handshake (its first byte is 22, a handshake
/// record), or plain HTTP that is answered with a redirect to the same URL over HTTPS.
async fn serve_tls(stream: TcpStream, connection: Connection, tls: Tls) {
    let peer = connection.peer;
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => {}
        Ok(Ok(1)) => return redirect_to_https(stream).await,
        _ => return,
    }
    match tokio::time::timeout(HEADER_TIMEOUT, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_connection(stream, connection).await,
        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
        Err(_) => tracing::debug!("TLS handshake with {peer}: no handshake within the timeout"),
    }
}

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 22;

/// `308` to `https://HOST/PATH` for a plain HTTP request on the HTTPS port.
async fn redirect_to_https(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(HEADER_TIMEOUT, read).await.is_err() {
        return;
    }
    let text = String::from_utf8_lossy(&head);
    let path = text
        .split_whitespace()
        .nth(1)
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    let host = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("host")
            .then(|| value.trim())
    });
    let response = match host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic())) {
        Some(host) => format!(
            "HTTP/1.1 308 Permanent Redirect\r\nlocation: https://{host}{path}\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        ),
        None => {
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
        }
    };
    let write = stream.write_all(response.as_bytes());
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// What serving one accepted connection needs.
struct Connection {
    peer: SocketAddr,
    router: Router,
    trusted_proxies: Arc<[IpAddr]>,
}

/// One connection, HTTP/1.1 with upgrades (WebSockets), until either side closes it.
async fn serve_connection<S>(stream: S, connection: Connection)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Connection {
        peer,
        router,
        trusted_proxies,
    } = connection;
    let service = hyper::service::service_fn(move |mut request: axum::extract::Request<_>| {
        // What `into_make_service_with_connect_info` would give the handlers: the client's
        // address (behind a trusted proxy, the one it names).
        let client = client_address(peer, request.headers(), &trusted_proxies);
        request.extensions_mut().insert(ConnectInfo(client));
        tower::ServiceExt::oneshot(router.clone(), request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!("HTTP connection from {peer}: {e}");
    }
}

/// A connection over a cap: `status` with the reason, then closed (never waited on for long).
fn refuse(mut stream: TcpStream, status: &str, reason: &str) {
    let body = serde_json::json!({ "error": reason }).to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        let write = stream.write_all(response.as_bytes());
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    });
}
