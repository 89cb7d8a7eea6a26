//! Every WebRTC peer on one UDP port, so a firewall needs one rule.
//!
//! The first packets of a peer are STUN binding requests whose USERNAME is
//! `<our ufrag>:<their ufrag>`: that names the peer. From then on its source address does. One
//! task reads the socket and hands each datagram to its peer's queue; a peer that does not keep
//! up loses datagrams (as on the network), it never stalls the others.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Datagrams queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 256;
/// The largest datagram we accept (WebRTC stays under the MTU).
const MAX_DATAGRAM: usize = 2048;

#[derive(Debug)]
pub struct Datagram {
    pub received: Instant,
    pub source: SocketAddr,
    pub contents: Vec<u8>,
}

impl Datagram {
    /// This datagram as a peer's input, arrived on `destination` (the candidate the peer knows);
    /// `None` if str0m cannot take it (not STUN, DTLS or RTP).
    pub fn input(&self, destination: SocketAddr) -> Option<str0m::Input<'_>> {
        let contents = self.contents.as_slice().try_into().ok()?;
        Some(str0m::Input::Receive(
            self.received,
            str0m::net::Receive {
                proto: str0m::net::Protocol::Udp,
                source: self.source,
                destination,
                contents,
            },
        ))
    }
}

#[derive(Debug, Default)]
struct Routes {
    by_ufrag: HashMap<String, mpsc::Sender<Datagram>>,
    ufrag_by_addr: HashMap<SocketAddr, String>,
}

#[derive(Debug)]
pub struct UdpMux {
    socket: UdpSocket,
    routes: Mutex<Routes>,
}

impl UdpMux {
    /// Serves the shared socket (bound, non-blocking) and starts the reading task.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Arc<UdpMux>> {
        let socket = UdpSocket::from_std(socket)?;
        let mux = Arc::new(UdpMux {
            socket,
            routes: Mutex::new(Routes::default()),
        });
        let reader = Arc::downgrade(&mux);
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                let Some(mux) = reader.upgrade() else { return };
                match mux.socket.recv_from(&mut buf).await {
                    Ok((n, source)) => mux.route(source, &buf[..n]),
                    // ICMP port unreachable from a departed peer shows up here on some
                    // systems; it is not the socket failing.
                    Err(e) => tracing::debug!("webrtc udp: {e}"),
                }
            }
        });
        Ok(mux)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Datagrams for the peer whose local ICE ufrag is `ufrag`.
    pub fn register(&self, ufrag: &str) -> mpsc::Receiver<Datagram> {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        self.lock().by_ufrag.insert(ufrag.to_owned(), tx);
        rx
    }

    pub fn unregister(&self, ufrag: &str) {
        let mut routes = self.lock();
        routes.by_ufrag.remove(ufrag);
        routes.ufrag_by_addr.retain(|_, u| u != ufrag);
    }

    /// Sends without waiting: a full socket buffer drops the datagram, as the network would,
    /// rather than stalling a peer's loop.
    pub fn send_to(&self, contents: &[u8], destination: SocketAddr) {
        if let Err(e) = self.socket.try_send_to(contents, destination) {
            tracing::debug!("webrtc udp send to {destination}: {e}");
        }
    }

    fn route(&self, source: SocketAddr, contents: &[u8]) {
        let mut routes = self.lock();
        let ufrag = match stun_local_ufrag(contents) {
            Some(ufrag) => {
                if !routes.by_ufrag.contains_key(ufrag) {
                    return;
                }
                routes.ufrag_by_addr.insert(source, ufrag.to_owned());
                ufrag.to_owned()
            }
            None => match routes.ufrag_by_addr.get(&source) {
                Some(ufrag) => ufrag.clone(),
                None => return,
            },
        };
        if let Some(tx) = routes.by_ufrag.get(&ufrag) {
            let _ = tx.try_send(Datagram {
                received: Instant::now(),
                source,
                contents: contents.to_vec(),
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_USERNAME: u16 = 0x0006;

/// The local part (before `:`) of a STUN message's USERNAME, if this is a STUN message with one.
pub fn stun_local_ufrag(packet: &[u8]) -> Option<&str> {
    // RFC 5389: two zero bits, a 20-byte header with the magic cookie, then TLV attributes
    // padded to 4 bytes.
    if packet.len() < 20 || packet[0] & 0xc0 != 0 || packet[4..8] != STUN_MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let body = packet.get(20..20 + length)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == STUN_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, then USERNAME with padding.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&STUN_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        attrs.resize(attrs.len().div_ceil(4) * 4, 0);
        let mut packet = vec![0x00, 0x01];
        packet.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        packet.extend_from_slice(&STUN_MAGIC_COOKIE);
        packet.extend_from_slice(&[7; 12]);
        packet.extend_from_slice(&attrs);
        packet
    }

    #[test]
    fn finds_the_local_ufrag() {
        assert_eq!(
            stun_local_ufrag(&stun_with_username("abcd:xyz")),
            Some("abcd")
        );
    }

    #[test]
    fn rejects_what_is_not_stun() {
        // DTLS and RTP start with other bits; truncated and lying lengths are not trusted.
        assert_eq!(stun_local_ufrag(&[0x16; 40]), None);
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        let mut packet = stun_with_username("abcd:xyz");
        packet.truncate(30);
        assert_eq!(stun_local_ufrag(&packet), None);
        let mut packet = stun_with_username("abcd:xyz");
        packet[3] = 200;
        assert_eq!(stun_local_ufrag(&packet), None);
    }

    #[tokio::test]
    async fn routes_by_stun_username_then_by_address() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mux = UdpMux::new(socket).unwrap();
        let mut a = mux.register("peer-a");
        let mut b = mux.register("peer-b");
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = mux.local_addr().unwrap();
        client.send_to(b"before any stun", to).await.unwrap();
        client
            .send_to(&stun_with_username("peer-b:remote"), to)
            .await
            .unwrap();
        client.send_to(b"media", to).await.unwrap();
        let first = b.recv().await.unwrap();
        assert!(stun_local_ufrag(&first.contents).is_some());
        assert_eq!(b.recv().await.unwrap().contents, b"media");
        assert!(a.try_recv().is_err(), "nothing for the other peer");
        mux.unregister("peer-b");
        client.send_to(b"after", to).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(b.try_recv().is_err());
    }
}
