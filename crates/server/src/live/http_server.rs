//! The HTTP accept loop. Every connection is counted against a cap for the whole server and
//! one per client address, and a request whose header has not fully arrived within
//! [`HEADER_TIMEOUT`] — a client that sends half a header, or keeps a connection idle between
//! requests — is closed. axum's own `serve` has neither (hyper's header timeout only runs with a
//! timer, which it does not set): 20,400 idle connections once took every file descriptor, and a
//! half-sent header held its connection for minutes. After an upgrade a WebSocket is no longer
//! HTTP: its own heartbeat and idle timeout govern it (`ws.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

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
/// accepted connection (`listener::connection_options`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
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
        let per_ip = match limits.per_ip.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(_) => {
                let reason = format!(
                    "{} already holds as many connections as one address may \
                     (server.max_connections_per_ip + {PER_IP_HEADROOM})",
                    peer.ip()
                );
                refuse(stream, "429 Too Many Requests", &reason);
                continue;
            }
        };
        options(&mut stream);
        let router = router.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, router).await;
            drop((global, per_ip));
        });
    }
}

/// One connection, HTTP/1.1 with upgrades (WebSockets), until either side closes it.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, router: Router) {
    let service = hyper::service::service_fn(move |mut request| {
        // What `into_make_service_with_connect_info` would give the handlers.
        request.extensions_mut().insert(ConnectInfo(peer));
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
