//! One WHEP viewer: a str0m peer driven by its own task.
//!
//! The loop drains the peer's output (datagrams to send, events) until it asks for a timeout,
//! then waits on the network, the source's frames, the timer and the stop signal together.
//! Frames are written with their output wallclock, so str0m's sender reports map both tracks to
//! the capture timeline and the browser's lip sync lines them up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_media::{Codec as MediaCodec, LiveFrame, LiveMedia, SourceFeed};
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::rtp::AbsCaptureTime;
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{broadcast, mpsc, watch};

use crate::connect_deadline::{self, CONNECT_TIMEOUT};
use crate::udp_mux::{Datagram, UdpMux};

/// Counters shared with the host, for metrics.
#[derive(Debug, Default)]
pub struct ViewerCounters {
    /// The peer has connected (ICE and DTLS done); until then it counts as pending.
    pub connected: AtomicBool,
    pub frames_sent: AtomicU64,
    pub frames_skipped: AtomicU64,
    pub lag_events: AtomicU64,
}

pub(crate) struct Viewer {
    pub rtc: Rtc,
    pub mux: Arc<UdpMux>,
    pub net: mpsc::Receiver<Datagram>,
    pub feed: Arc<SourceFeed>,
    pub stop: watch::Receiver<bool>,
    /// The address packets from each source arrive on (the candidate str0m knows).
    pub local_addr: Box<dyn Fn(std::net::SocketAddr) -> std::net::SocketAddr + Send>,
    pub counters: Arc<ViewerCounters>,
    /// Ask the browser to play with no extra delay (the `low` latency profile).
    pub zero_playout_delay: bool,
    /// Send the feed's audio (off: the camera's live audio is disabled).
    pub audio: bool,
    /// The video codec negotiated (the source's when the viewer came).
    pub video_codec: MediaCodec,
    pub epoch: WallclockEpoch,
}

/// Maps monotonic instants to the system clock with one pair read at start, so every
/// conversion agrees (reading both clocks per frame would add their jitter).
#[derive(Debug, Clone, Copy)]
pub struct WallclockEpoch {
    instant: Instant,
    system: std::time::SystemTime,
}

impl WallclockEpoch {
    pub fn now() -> Self {
        WallclockEpoch {
            instant: Instant::now(),
            system: std::time::SystemTime::now(),
        }
    }

    pub fn system_time(&self, at: Instant) -> std::time::SystemTime {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.system + after,
            None => self.system - self.instant.duration_since(at),
        }
    }
}

/// The tracks we send on, and the payload type chosen for each.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tracks {
    pub video: Option<(Mid, Option<Pt>)>,
    pub audio: Option<(Mid, Option<Pt>)>,
}

impl Viewer {
    pub async fn run(mut self) {
        let started = Instant::now();
        let mut connected = false;
        let mut tracks = Tracks::default();
        let mut live: Option<broadcast::Receiver<LiveFrame>> = None;
        let mut awaiting_keyframe = false;
        while let Some(timeout) = self.drain(&mut connected, &mut tracks) {
            if live.is_none() && connected && tracks.ready() {
                let subscription = if self.audio {
                    self.feed.subscribe()
                } else {
                    self.feed.subscribe_video_only()
                };
                for frame in catch_up(&subscription.cached) {
                    self.write(&tracks, &frame);
                }
                awaiting_keyframe = subscription.cached.is_empty();
                live = Some(subscription.live);
                continue;
            }
            if connect_deadline::expired(started, connected) {
                tracing::info!("whep viewer: no connection after {CONNECT_TIMEOUT:?}");
                break;
            }
            self.counters.connected.store(connected, Ordering::Relaxed);
            let wake = connect_deadline::wake_at(timeout, started, connected);
            let frame = async {
                match live.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                datagram = self.net.recv() => {
                    let Some(d) = datagram else { break };
                    let Some(input) = d.input((self.local_addr)(d.source)) else { continue };
                    if let Err(e) = self.rtc.handle_input(input) {
                        tracing::debug!("whep viewer input: {e}");
                    }
                }
                frame = frame => match frame {
                    Ok(frame) => {
                        if frame.is_keyframe() {
                            awaiting_keyframe = false;
                        }
                        let skip = awaiting_keyframe && frame.is_video();
                        if skip {
                            self.counters.frames_skipped.fetch_add(1, Ordering::Relaxed);
                        } else {
                            self.write(&tracks, &frame);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Behind the source: cut back to the next keyframe, never queue.
                        self.counters.lag_events.fetch_add(1, Ordering::Relaxed);
                        self.counters.frames_skipped.fetch_add(n, Ordering::Relaxed);
                        awaiting_keyframe = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                () = tokio::time::sleep_until(wake.into()) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        tracing::debug!("whep viewer timeout: {e}");
                    }
                }
                _ = self.stop.changed() => break,
            }
        }
        self.rtc.disconnect();
        // Flush what disconnecting produced (DTLS close, RTCP BYE).
        let _ = self.drain(&mut connected, &mut tracks);
    }

    /// Sends what the peer has to send; returns when it next wants a timeout, or `None` when the
    /// peer is finished.
    fn drain(&mut self, connected: &mut bool, tracks: &mut Tracks) -> Option<Instant> {
        loop {
            if !self.rtc.is_alive() {
                return None;
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => return Some(at),
                Ok(Output::Transmit(t)) => self.mux.send_to(&t.contents, t.destination),
                Ok(Output::Event(event)) => match event {
                    Event::Connected => *connected = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return None
                    }
                    Event::MediaAdded(media) => {
                        let slot = match media.kind {
                            MediaKind::Video => &mut tracks.video,
                            MediaKind::Audio => &mut tracks.audio,
                        };
                        *slot = Some((media.mid, None));
                        tracks.choose_payload_types(&mut self.rtc, self.video_codec);
                    }
                    Event::Closed => return None,
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!("whep viewer: {e}");
                    return None;
                }
            }
        }
    }

    fn write(&mut self, tracks: &Tracks, frame: &LiveFrame) {
        let (slot, frequency) = match frame.media {
            // The source changed codec under this viewer (a camera re-configured): what it
            // negotiated cannot carry the new one; a new viewer gets it.
            LiveMedia::Video { codec, .. } if codec != self.video_codec => {
                self.counters.frames_skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            LiveMedia::Video { .. } => (tracks.video, Frequency::NINETY_KHZ),
            LiveMedia::Opus if self.audio => (tracks.audio, Frequency::FORTY_EIGHT_KHZ),
            LiveMedia::Opus => return,
        };
        let Some((mid, Some(pt))) = slot else { return };
        let Some(mut writer) = self.rtc.writer(mid) else {
            return;
        };
        if self.zero_playout_delay && frame.is_video() {
            writer = writer.playout_delay(MediaTime::ZERO, MediaTime::from_millis(400));
        }
        // The same instant the sender reports map this frame to, for receivers that negotiate
        // abs-capture-time (a browser then knows each frame's capture time at once).
        writer = writer.abs_capture_time(AbsCaptureTime {
            capture_time: self.epoch.system_time(frame.due),
            clock_offset: None,
        });
        let rtp_time = MediaTime::new(frame.pts.max(0) as u64, frequency);
        match writer.write(pt, frame.due, rtp_time, frame.data.clone()) {
            Ok(()) => {
                self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!("whep viewer write: {e}"),
        }
    }
}

/// The cached frames since the last keyframe (up to a GOP, seconds old), restamped to play at
/// once: one 90 kHz tick apart, ending at the newest cached frame. Sent with their true stamps,
/// a browser would first play seconds-old video and then lip-sync audio against it, delaying
/// the audio by the GOP age for many seconds; restamped, it decodes through them to the current
/// picture and the live frames continue on the true timeline.
fn catch_up(cached: &[LiveFrame]) -> Vec<LiveFrame> {
    let Some(last) = cached.last() else {
        return Vec::new();
    };
    let n = cached.len() as i64;
    cached
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let back = n - 1 - i as i64;
            LiveFrame {
                pts: last.pts - back,
                due: last
                    .due
                    .checked_sub(Duration::from_nanos(back as u64 * 1_000_000_000 / 90_000))
                    .unwrap_or(last.due),
                ..frame.clone()
            }
        })
        .collect()
}

impl Tracks {
    /// A track can be written (the other may be added later, or never: audio-only viewers).
    fn ready(&self) -> bool {
        [self.video, self.audio]
            .iter()
            .any(|slot| matches!(slot, Some((_, Some(_)))))
    }

    /// Both tracks can be written (a publisher sends both).
    pub fn both_ready(&self) -> bool {
        [self.video, self.audio]
            .iter()
            .all(|slot| matches!(slot, Some((_, Some(_)))))
    }

    /// H.264 with packetization mode 1 (the browser's constrained-baseline entry first) or
    /// H.265, and Opus. The media-added events come after `Connected`, so this runs on each.
    pub fn choose_payload_types(&mut self, rtc: &mut Rtc, video: MediaCodec) {
        if let Some((mid, pt @ None)) = &mut self.video {
            if let Some(writer) = rtc.writer(*mid) {
                *pt = if video == MediaCodec::H265 {
                    writer
                        .payload_params()
                        .find(|p| p.spec().codec == Codec::H265)
                        .map(|p| p.pt())
                } else {
                    let h264: Vec<_> = writer
                        .payload_params()
                        .filter(|p| p.spec().codec == Codec::H264)
                        .filter(|p| p.spec().format.packetization_mode == Some(1))
                        .map(|p| (p.pt(), p.spec().format.profile_level_id))
                        .collect();
                    h264.iter()
                        .find(|(_, profile)| *profile == Some(0x42e01f))
                        .or_else(|| h264.first())
                        .map(|(pt, _)| *pt)
                };
            }
        }
        if let Some((mid, pt @ None)) = &mut self.audio {
            if let Some(writer) = rtc.writer(*mid) {
                *pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_frames_are_restamped_to_end_at_the_newest() {
        let t0 = Instant::now();
        let frames: Vec<LiveFrame> = (0..3)
            .map(|i| LiveFrame {
                media: LiveMedia::Video {
                    codec: MediaCodec::H264,
                    keyframe: i == 0,
                },
                due: t0 + Duration::from_millis(33 * i as u64),
                pts: 1_000_000 + 3000 * i,
                data: Arc::from(vec![i as u8]),
            })
            .collect();
        let restamped = catch_up(&frames);
        let pts: Vec<i64> = restamped.iter().map(|f| f.pts).collect();
        assert_eq!(pts, vec![1_005_998, 1_005_999, 1_006_000]);
        assert_eq!(restamped[2].due, frames[2].due);
        assert!(restamped[0].due < restamped[2].due);
        assert!(restamped[0].is_keyframe());
        assert_eq!(&*restamped[1].data, &[1u8][..]);
    }
}
