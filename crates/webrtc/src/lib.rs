//! WebRTC for lockstep: WHEP viewers on str0m (sans-IO), one task per peer, every peer on one
//! UDP port. Media comes from a source's [`lockstep_media::SourceFeed`], already synchronized and
//! stamped; sender reports are timed from those stamps (capture time), never from send time.

mod connect_deadline;
mod publisher;
pub mod udp_mux;
mod viewer;
pub mod whep;
pub mod whep_client;
pub mod whip_client;

pub use connect_deadline::CONNECT_TIMEOUT;
pub use publisher::Received;
pub use viewer::{ViewerCounters, WallclockEpoch};
pub use whep::{ViewerOptions, ViewerTotals, WhepError, WhepHost};

/// An unguessable token (ICE-password randomness: 24 alphanumerics, ~140 bits), for resume
/// tokens and the like.
pub fn random_token() -> String {
    str0m::IceCreds::new().pass
}
