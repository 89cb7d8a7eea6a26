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
    let addr = config.listen;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .context("cannot create the HTTP socket")?;
    // On Windows SO_REUSEADDR would let another process take the port over; its default
    // already allows binding beside TIME_WAIT entries.
    #[cfg(unix)]
    socket
        .set_reuse_address(true)
        .context("cannot set SO_REUSEADDR")?;
    #[cfg(unix)]
    if config.reuse_port {
        socket
            .set_reuse_port(true)
            .context("cannot set SO_REUSEPORT")?;
    }
    #[cfg(not(unix))]
    if config.reuse_port {
        anyhow::bail!("server.reuse_port is only available on Unix");
    }
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr} (HTTP)"))?;
    socket
        .listen(BACKLOG)
        .with_context(|| format!("cannot listen on {addr} (HTTP)"))?;
    Ok(tokio::net::TcpListener::from_std(socket.into())?)
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
