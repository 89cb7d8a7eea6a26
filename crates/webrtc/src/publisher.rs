//! One WHIP publisher (RFC 9725 ingest): a str0m peer that receives a browser's or an encoder's
//! audio and video, driven by its own task, handing each depacketized frame on with the
//! stream's latest sender report (the publisher's wallclock for an RTP time): the server maps
//! both tracks onto one timeline through those reports.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{mpsc, watch};

use crate::connect_deadline::{self, CONNECT_TIMEOUT};
use crate::udp_mux::{Datagram, UdpMux};
use crate::viewer::ViewerCounters;
use crate::whep_client::Track;

/// A publisher that sends keyframes only when asked (browsers) is asked this often, so new
/// viewers and recordings start within a GOP this long.
const KEYFRAME_EVERY: Duration = Duration::from_secs(2);

/// One frame from the publisher.
#[derive(Debug, Clone)]
pub struct Received {
    pub track: Track,
    /// RTP time (90 kHz video, 48 kHz Opus), as sent (32 bits).
    pub rtp_time: u32,
    pub arrived: Instant,
    /// H.264 access unit (Annex B) or one Opus packet.
    pub data: Arc<[u8]>,
    pub keyframe: bool,
    /// False after a gap in the RTP sequence.
    pub contiguous: bool,
    /// The stream's latest sender report: an RTP time and the publisher's wallclock for it.
    pub report: Option<(u32, SystemTime)>,
}

pub(crate) struct Publisher {
    pub rtc: Rtc,
    pub mux: Arc<UdpMux>,
    pub net: mpsc::Receiver<Datagram>,
    pub stop: watch::Receiver<bool>,
    pub local_addr: Box<dyn Fn(std::net::SocketAddr) -> std::net::SocketAddr + Send>,
    pub out: mpsc::Sender<Received>,
    /// Its session's counters: `connected` is what the pending cap reads.
    pub counters: Arc<ViewerCounters>,
}

impl Publisher {
    pub async fn run(mut self) {
        let started = Instant::now();
        let mut connected = false;
        let mut mids: Vec<(Mid, Track)> = Vec::new();
        let mut keyframes = tokio::time::interval(KEYFRAME_EVERY);
        while let Some(timeout) = self.drain(&mut connected, &mut mids) {
            if connect_deadline::expired(started, connected) {
                tracing::info!("whip publisher: no connection after {CONNECT_TIMEOUT:?}");
                break;
            }
            self.counters.connected.store(connected, Ordering::Relaxed);
            let wake = connect_deadline::wake_at(timeout, started, connected);
            tokio::select! {
                datagram = self.net.recv() => {
                    let Some(d) = datagram else { break };
                    let Some(input) = d.input((self.local_addr)(d.source)) else { continue };
                    if let Err(e) = self.rtc.handle_input(input) {
                        tracing::debug!("whip publisher input: {e}");
                    }
                }
                _ = keyframes.tick() => {
                    for (mid, track) in &mids {
                        if *track == Track::Video {
                            if let Some(mut writer) = self.rtc.writer(*mid) {
                                let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        tracing::debug!("whip publisher timeout: {e}");
                    }
                }
                _ = self.stop.changed() => break,
            }
        }
        self.rtc.disconnect();
        let _ = self.drain(&mut connected, &mut mids);
    }

    /// Sends what the peer has to send and hands on what it received; the next timeout, or
    /// `None` when the peer is finished (or nobody takes its frames any more).
    fn drain(&mut self, connected: &mut bool, mids: &mut Vec<(Mid, Track)>) -> Option<Instant> {
        loop {
            if !self.rtc.is_alive() || self.out.is_closed() {
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
                        let track = match media.kind {
                            MediaKind::Video => Track::Video,
                            MediaKind::Audio => Track::Audio,
                        };
                        mids.push((media.mid, track));
                    }
                    Event::MediaData(data) => {
                        let Some(&(_, track)) = mids.iter().find(|(m, _)| *m == data.mid) else {
                            continue;
                        };
                        let frame = Received {
                            track,
                            rtp_time: data.time.numer() as u32,
                            arrived: data.network_time,
                            keyframe: data.is_keyframe(),
                            contiguous: data.contiguous,
                            report: data
                                .last_sender_info
                                .map(|s| (s.rtp_time.numer() as u32, s.ntp_time)),
                            data: data.data,
                        };
                        // A full queue (the server fell behind) drops the frame, never blocks
                        // the peer.
                        let _ = self.out.try_send(frame);
                    }
                    Event::Closed => return None,
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!("whip publisher: {e}");
                    return None;
                }
            }
        }
    }
}
