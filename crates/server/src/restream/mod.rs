//! The RTSP restream (`[server] rtsp_listen`): every camera's synchronized output for the tools
//! people already run (Frigate, Home Assistant, VLC, ffmpeg, GStreamer), with the RTCP sender
//! reports a relay that "passes timestamps through" leaves out — the reports are what lets
//! those tools line audio up with video, so without them everything downstream drifts.
//!
//! The stamps are the ones WHEP viewers and recordings get: video as the camera coded it
//! (H.264/H.265 passed through), audio as the live path makes it (Opus, re-timed).

mod connection;
mod credentials;
mod describe;
mod player;
mod rtp_sender;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lockstep_webrtc::WallclockEpoch;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::live::state::AppState;
use describe::{AUDIO_PAYLOAD_TYPE, VIDEO_PAYLOAD_TYPE, VIDEO_TRACK};
use rtp_sender::RtpSender;

/// What every restream connection shares.
#[derive(Debug)]
pub struct Restream {
    state: Arc<AppState>,
    /// One wallclock mapping for every client: their reports agree.
    epoch: WallclockEpoch,
    /// Per track: (SSRC, RTP timestamp offset), fixed for the run so clients share a timeline.
    tracks: [(u32, u32); 2],
    session_timeout: Duration,
}

impl Restream {
    fn ssrc(&self, track: usize) -> u32 {
        self.tracks[track].0
    }

    /// A new client's sender for `track`, starting at a random sequence number.
    fn sender(&self, track: usize) -> RtpSender {
        let payload_type = if track == VIDEO_TRACK {
            VIDEO_PAYLOAD_TYPE
        } else {
            AUDIO_PAYLOAD_TYPE
        };
        let (ssrc, offset) = self.tracks[track];
        RtpSender::new(payload_type, ssrc, random_u32() as u16, offset, self.epoch)
    }
}

/// Binds the restream's listener (before anything else starts: a taken port is a start error).
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    crate::live::listener::bind_tcp(addr, false, "RTSP restream")
}

/// Serves RTSP clients on `listener` until the task is dropped.
pub fn spawn(
    listener: TcpListener,
    state: Arc<AppState>,
    session_timeout: Duration,
) -> tokio::task::JoinHandle<()> {
    let ctx = Arc::new(Restream {
        state,
        epoch: WallclockEpoch::now(),
        tracks: [(random_u32(), random_u32()), (random_u32(), random_u32())],
        session_timeout,
    });
    tokio::spawn(async move {
        loop {
            let (mut stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!("restream: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let permit = match ctx.state.ws_limits.admit(peer.ip()) {
                Ok(permit) => permit,
                Err(_) => {
                    let response = lockstep_rtsp::message::Response::new(503).header(
                        "X-Error",
                        format!(
                            "{} holds too many connections (server.max_connections_per_ip)",
                            peer.ip()
                        ),
                    );
                    tokio::spawn(async move {
                        let _ = stream.write_all(&response.to_bytes(None)).await;
                    });
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let ctx = ctx.clone();
            tokio::spawn(async move {
                connection::serve(stream, peer, ctx).await;
                drop(permit);
            });
        }
    })
}

fn random_u32() -> u32 {
    crate::camera_http::random_u64() as u32
}
