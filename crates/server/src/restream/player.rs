//! Sends one playing client its camera's frames: the cached picture since the last keyframe,
//! then the live feed, as RTP with sender reports, over the RTSP connection or UDP.
//!
//! A client that cannot keep up (its TCP queue full, or the feed lagging past it) loses frames
//! and resumes at the next keyframe: never a queue without bound, never a broken picture.

use std::time::Instant;

use lockstep_media::FeedSubscription;
use lockstep_rtsp::message::interleave;
pub use lockstep_rtsp::serving::{Route, UdpPair};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::describe::{AUDIO_TRACK, VIDEO_TRACK};
use super::rtp_sender::{Outgoing, RtpSender};

/// A track set up for playing.
#[derive(Debug)]
pub struct PlayTrack {
    pub route: Route,
    pub sender: RtpSender,
}

/// Plays until the feed ends or the task is aborted (TEARDOWN, PAUSE, the client gone).
pub async fn run(
    subscription: FeedSubscription,
    mut tracks: [Option<PlayTrack>; 2],
    tcp_out: mpsc::Sender<Vec<u8>>,
) {
    let mut live = subscription.live;
    let mut awaiting_keyframe = false;
    let mut out = Vec::new();
    let mut cached = subscription.cached.into_iter();
    loop {
        let frame = match cached.next() {
            Some(frame) => frame,
            None => match live.recv().await {
                Ok(frame) => frame,
                Err(RecvError::Lagged(_)) => {
                    awaiting_keyframe = true;
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
        };
        let index = if frame.is_video() {
            if awaiting_keyframe && !frame.is_keyframe() {
                continue;
            }
            awaiting_keyframe = false;
            VIDEO_TRACK
        } else {
            AUDIO_TRACK
        };
        let Some(track) = &mut tracks[index] else {
            continue;
        };
        out.clear();
        track.sender.frame(&frame, Instant::now(), &mut out);
        for packet in out.drain(..) {
            let sent = send(&track.route, packet, &tcp_out).await;
            if !sent && frame.is_video() {
                // The rest of this picture and what depends on it cannot be decoded.
                awaiting_keyframe = true;
                break;
            }
        }
    }
}

/// Sends one packet; false when a TCP client's queue is full (the packet is dropped).
async fn send(route: &Route, packet: Outgoing, tcp_out: &mpsc::Sender<Vec<u8>>) -> bool {
    match route {
        Route::Tcp {
            rtp_channel,
            rtcp_channel,
        } => {
            let framed = match packet {
                Outgoing::Rtp(p) => interleave(*rtp_channel, &p),
                Outgoing::Rtcp(p) => interleave(*rtcp_channel, &p),
            };
            !matches!(tcp_out.try_send(framed), Err(TrySendError::Full(_)))
        }
        Route::Udp(pair) => {
            // A lost datagram is the network's business; a send error is not ours to report.
            let _ = match packet {
                Outgoing::Rtp(p) => pair.rtp.send_to(&p, pair.client_rtp).await,
                Outgoing::Rtcp(p) => pair.rtcp.send_to(&p, pair.client_rtcp).await,
            };
            true
        }
    }
}
