//! How long a peer may take to connect, and what it costs to wait for one.
//!
//! An offer costs a peer's state (DTLS, SRTP, ICE: about 70 kB) from the moment it is answered.
//! A client that posts offers and never connects must not be able to pile them up: each waits at
//! most [`CONNECT_TIMEOUT`], and only so many may wait at once.

use std::time::{Duration, Instant};

/// A peer that has not connected by then is given up. A browser on the LAN connects in well
/// under a second; ICE-lite with host candidates either works at once or not at all.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Peers still connecting for one camera or push source at most.
pub const MAX_PENDING_PER_SOURCE: usize = 16;

/// Peers still connecting from one client address at most (so that one client cannot take a
/// source's every slot).
pub const MAX_PENDING_PER_CLIENT: usize = 8;

/// Peers still connecting over the whole server at most.
pub const MAX_PENDING: usize = 128;

/// When a peer's loop must wake: when the peer asked (`timeout`), or earlier at its connect
/// deadline while it is not connected — an ICE-lite peer that never receives a packet asks for
/// no timeout of its own, and would otherwise never notice its deadline.
pub fn wake_at(timeout: Instant, started: Instant, connected: bool) -> Instant {
    if connected {
        timeout
    } else {
        timeout.min(started + CONNECT_TIMEOUT)
    }
}

/// Whether a peer started at `started` and not yet connected should be given up.
pub fn expired(started: Instant, connected: bool) -> bool {
    !connected && started.elapsed() >= CONNECT_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconnected_peer_wakes_at_its_deadline_a_connected_one_when_it_asks() {
        let started = Instant::now();
        let far = started + Duration::from_secs(3600);
        assert_eq!(wake_at(far, started, false), started + CONNECT_TIMEOUT);
        assert_eq!(wake_at(far, started, true), far);
        let soon = started + Duration::from_millis(5);
        assert_eq!(wake_at(soon, started, false), soon);
        assert!(!expired(started, false));
        let long_ago = started - CONNECT_TIMEOUT;
        assert!(expired(long_ago, false));
        assert!(!expired(long_ago, true));
    }
}
