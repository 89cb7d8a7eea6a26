//! The HTTP listener, set up for clients that come and go by the thousand: `SO_REUSEADDR` (a
//! restart binds at once however many TIME_WAIT entries the last run left), optionally
//! `SO_REUSEPORT`, and on every accepted connection `TCP_NODELAY` (signalling messages are small
//! and latency-bound) and TCP keepalive (a peer that vanished without a FIN is found).

use std::time::Duration;

use anyhow::Context as _;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::config::ServerConfig;

/// Connections waiting to be accepted (a reconnect storm arrives at once).
const BACKLOG: i32 = 4096;

pub fn bind(config: &ServerConfig) -> anyhow::Result<tokio::net::TcpListener> {
    bind_tcp(config.listen, config.reuse_port, "HTTP")
}

/// A TCP listener on `addr` (`what` names it in errors): the HTTP server's, the restream's.
pub fn bind_tcp(
    addr: std::net::SocketAddr,
    reuse_port: bool,
    what: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .with_context(|| format!("cannot create the {what} socket"))?;
    #[cfg(unix)]
    socket
        .set_reuse_address(true)
        .context("cannot set SO_REUSEADDR")?;
    #[cfg(unix)]
    if reuse_port {
        socket
            .set_reuse_port(true)
            .context("cannot set SO_REUSEPORT")?;
    }
    // On Windows SO_REUSEADDR would let another process take the port over, and binding beside
    // TIME_WAIT entries needs nothing: the port is made ours alone instead.
    #[cfg(windows)]
    exclusive_address_use(&socket).context("cannot set SO_EXCLUSIVEADDRUSE")?;
    #[cfg(not(unix))]
    if reuse_port {
        anyhow::bail!("server.reuse_port is only available on Unix");
    }
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr} ({what})"))?;
    socket
        .listen(BACKLOG)
        .with_context(|| format!("cannot listen on {addr} ({what})"))?;
    Ok(tokio::net::TcpListener::from_std(socket.into())?)
}

/// The WebRTC media socket on `addr`: on Windows made ours alone like the TCP listeners (a
/// process that sets SO_REUSEADDR could otherwise bind the port and receive viewers' media).
pub fn bind_udp(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .with_context(|| format!("cannot create the {what} socket"))?;
    #[cfg(windows)]
    exclusive_address_use(&socket).context("cannot set SO_EXCLUSIVEADDRUSE")?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("cannot listen on udp {addr} ({what})"))?;
    Ok(socket.into())
}

/// `SO_EXCLUSIVEADDRUSE`: no other socket may bind this address, whatever options it sets.
#[cfg(windows)]
#[allow(unsafe_code)] // one setsockopt socket2 does not wrap
fn exclusive_address_use(socket: &Socket) -> std::io::Result<()> {
    use std::os::windows::io::AsRawSocket as _;
    use windows_sys::Win32::Networking::WinSock::{setsockopt, SOL_SOCKET, SO_EXCLUSIVEADDRUSE};
    let on: i32 = 1;
    // SAFETY: the socket is open for the call; optval points at an i32 of the length given.
    let result = unsafe {
        setsockopt(
            socket.as_raw_socket() as usize,
            SOL_SOCKET,
            SO_EXCLUSIVEADDRUSE,
            (&on as *const i32).cast(),
            std::mem::size_of::<i32>() as i32,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The keepalive every accepted connection gets.
pub fn keepalive(config: &ServerConfig) -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(Duration::from_secs(config.tcp_keepalive_idle_secs.into()))
        .with_interval(Duration::from_secs(
            config.tcp_keepalive_interval_secs.into(),
        ))
        .with_retries(config.tcp_keepalive_count)
}

/// What every accepted connection gets (for `ListenerExt::tap_io`).
pub fn connection_options(
    keepalive: TcpKeepalive,
) -> impl FnMut(&mut tokio::net::TcpStream) + Send + 'static {
    move |stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        if let Err(e) = SockRef::from(&*stream).set_tcp_keepalive(&keepalive) {
            tracing::debug!("TCP keepalive: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows lets a socket with SO_REUSEADDR bind a port another socket listens on unless
    /// that one asked for it exclusively (Linux never does): run under wine in CI.
    #[tokio::test]
    async fn no_other_socket_takes_the_port_over() {
        let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), false, "test").unwrap();
        let addr = listener.local_addr().unwrap();
        let thief = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        thief.set_reuse_address(true).unwrap();
        assert!(
            thief.bind(&addr.into()).is_err(),
            "another socket bound {addr}"
        );
    }

    #[test]
    fn no_other_socket_takes_the_udp_port_over() {
        let socket = bind_udp("127.0.0.1:0".parse().unwrap(), "test").unwrap();
        let addr = socket.local_addr().unwrap();
        let thief = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        thief.set_reuse_address(true).unwrap();
        assert!(
            thief.bind(&addr.into()).is_err(),
            "another socket bound udp {addr}"
        );
    }
}
