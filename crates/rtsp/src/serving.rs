//! What lockstep's two RTSP servers share — the camera simulator and the restream: where a
//! playing client's packets go, the connection's writer, and the session check.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::message::{Request, Response};
use crate::transport::{self, Transport};

/// Where one track's packets go.
#[derive(Debug, Clone)]
pub enum Route {
    Tcp { rtp_channel: u8, rtcp_channel: u8 },
    Udp(Arc<UdpPair>),
}

/// The server's two UDP sockets for one track, and the client's ports.
#[derive(Debug)]
pub struct UdpPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub client_rtp: SocketAddr,
    pub client_rtcp: SocketAddr,
}

impl UdpPair {
    /// Binds an even/odd port pair on `local` for a client at `peer` listening on these ports.
    pub async fn bind(
        local: IpAddr,
        peer: IpAddr,
        client_rtp: u16,
        client_rtcp: u16,
    ) -> std::io::Result<UdpPair> {
        let (rtp, rtcp) = crate::udp_media::bind_rtp_pair(local).await?;
        Ok(UdpPair {
            rtp,
            rtcp,
            client_rtp: SocketAddr::new(peer, client_rtp),
            client_rtcp: SocketAddr::new(peer, client_rtcp),
        })
    }
}

/// Writes what the connection queues (responses, interleaved packets) until the queue closes.
pub async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// A request naming a session must name the connection's (`ours`); one naming none passes.
pub fn check_session(request: &Request, ours: Option<&str>) -> Result<(), Response> {
    let Some(given) = request.header("Session") else {
        return Ok(());
    };
    let given = given.split(';').next().unwrap_or_default().trim();
    match ours {
        Some(id) if id == given => Ok(()),
        _ => Err(Response::new(454).header("X-Error", format!("no session {given:?}"))),
    }
}

/// What a SETUP asked for and got: the transport, the server's UDP pair when it is UDP, and
/// that pair's ports for the `Transport` answer.
#[derive(Debug)]
pub struct SetupTransport {
    pub chosen: Transport,
    pub udp: Option<Arc<UdpPair>>,
    pub server_ports: Option<(u16, u16)>,
}

/// The first transport of a SETUP's offer the server can serve, with a UDP pair bound on
/// `local` for a client at `peer` when it is UDP; else the error answer (461, 500).
pub async fn setup_transport(
    request: &Request,
    local: IpAddr,
    peer: IpAddr,
) -> Result<SetupTransport, Response> {
    let Some(chosen) = request.header("Transport").and_then(transport::choose) else {
        return Err(Response::new(461).header("X-Error", "offer RTP/AVP over UDP or TCP"));
    };
    let udp = match chosen {
        Transport::Udp {
            client_rtp,
            client_rtcp,
        } => match UdpPair::bind(local, peer, client_rtp, client_rtcp).await {
            Ok(pair) => Some(Arc::new(pair)),
            Err(e) => {
                return Err(Response::new(500).header("X-Error", format!("cannot bind UDP: {e}")))
            }
        },
        Transport::Tcp { .. } => None,
    };
    let server_ports = udp.as_ref().map(|p| {
        (
            p.rtp.local_addr().map_or(0, |a| a.port()),
            p.rtcp.local_addr().map_or(0, |a| a.port()),
        )
    });
    Ok(SetupTransport {
        chosen,
        udp,
        server_ports,
    })
}

/// The path of a request URI (`rtsp://[user@]host[:port]/path` or a bare path); `None` when it
/// has none.
pub fn request_path(uri: &str) -> Option<&str> {
    match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]),
        None => uri.starts_with('/').then_some(uri),
    }
}

#[cfg(test)]
mod tests {
    use super::request_path;

    #[test]
    fn paths_of_absolute_and_bare_uris() {
        assert_eq!(
            request_path("rtsp://u:p@h:8554/door/sub"),
            Some("/door/sub")
        );
        assert_eq!(request_path("rtsp://h:8554"), None);
        assert_eq!(request_path("/door"), Some("/door"));
        assert_eq!(request_path("*"), None);
    }
}
