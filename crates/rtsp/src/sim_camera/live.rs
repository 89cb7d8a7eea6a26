//! The camera's one live timeline, shared by every client as on a real camera: a thread captures
//! (synthesizes) picture and sound at true time, stamps them with the device's drifting clocks,
//! encodes, packetizes, and publishes RTP and RTCP to all sessions.
//!
//! The clock model is the common real case: the device's sample clocks run off nominal by a few
//! hundred ppm; it stamps samples by count, captures in true time, and its sender reports map RTP
//! time to the true capture wallclock. An audio path delay (`audio_offset`) is the one thing the
//! reports don't show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lockstep_media::g711::G711Law;
use lockstep_media::h264::{sdp_fmtp, H264Packetizer, NAL_PPS, NAL_SPS};
use lockstep_media::pattern::{beep_value, I420Frame, StripeData};
use lockstep_media::{EncodedFrame, H264Encoder};
use lockstep_opus::{Application, OpusEncoder};
use lockstep_sync::NtpTime;
use tokio::sync::broadcast;

use super::config::{AudioCodec, SimCameraConfig};
use super::speaker::Speaker;
use super::Rng;
use crate::rtp::{rtp_packet, sender_report};

/// A reboot pauses media this long before the new stream starts.
const REBOOT_PAUSE_SECS: f64 = 1.0;
/// Audio packets carry 20 ms.
const AUDIO_PACKETS_PER_SEC: u32 = 50;
const VIDEO_CLOCK_HZ: u32 = 90_000;
const PUBLISH_QUEUE: usize = 4_096;

/// A media track as announced in SDP.
#[derive(Debug, Clone)]
pub struct TrackInfo {
    pub media: &'static str,
    pub payload_type: u8,
    pub rtpmap: String,
    pub fmtp: Option<String>,
}

/// One RTP or RTCP packet of the live stream.
#[derive(Debug)]
pub struct Packet {
    pub track: usize,
    pub rtcp: bool,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct TrackState {
    ssrc: u32,
    next_seq: u16,
    /// The RTP clock: timestamp `base` at true time `start_secs`, advancing `rate_hz` ticks per
    /// true second (nominal rate times the device's clock error).
    base: u32,
    start_secs: f64,
    rate_hz: f64,
    packets: u32,
    octets: u32,
}

impl TrackState {
    fn rtptime_at(&self, secs: f64) -> u32 {
        let ticks = (secs.max(self.start_secs) - self.start_secs) * self.rate_hz;
        self.base.wrapping_add(ticks.round() as i64 as u32)
    }
}

/// Where a new client's stream starts, per track: the first RTP packet it will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackStart {
    pub seq: u16,
    pub rtptime: u32,
    pub ssrc: u32,
}

struct Published {
    tx: broadcast::Sender<Arc<Packet>>,
    tracks: Vec<TrackState>,
    /// The latest sender report per track: a new client gets them first, as from a camera that
    /// reports at the start of every session, so it can sync at once.
    last_reports: Vec<Option<Arc<Packet>>>,
}

/// The shared live stream.
pub struct Live {
    pub tracks: Vec<TrackInfo>,
    published: Mutex<Published>,
    pub speaker: Mutex<Speaker>,
    /// The report blocks of the receiver reports clients sent over UDP (the latest kept).
    pub receiver_reports: Mutex<std::collections::VecDeque<crate::rtp::ReportBlock>>,
    started: Instant,
    stop: AtomicBool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("tracks", &self.tracks)
            .finish()
    }
}

impl Live {
    /// Subscribes a client: everything published after this, where each track starts (RTP-Info:
    /// the next sequence number, and every track's RTP time at one common instant, now), and the
    /// latest sender reports.
    pub fn subscribe(&self) -> Subscription {
        let now = self.now_secs();
        let published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let starts = published
            .tracks
            .iter()
            .map(|t| TrackStart {
                seq: t.next_seq,
                rtptime: t.rtptime_at(now),
                ssrc: t.ssrc,
            })
            .collect();
        Subscription {
            rx: published.tx.subscribe(),
            starts,
            reports: published.last_reports.iter().flatten().cloned().collect(),
        }
    }

    pub fn ssrc(&self, track: usize) -> u32 {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tracks
            .get(track)
            .map_or(0, |t| t.ssrc)
    }

    /// Seconds of true time since the camera started.
    pub fn now_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn publish(&self, track: usize, rtcp: bool, data: Vec<u8>) {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let packet = Arc::new(Packet { track, rtcp, data });
        if rtcp {
            published.last_reports[track] = Some(Arc::clone(&packet));
        } else {
            let t = &mut published.tracks[track];
            t.next_seq = t.next_seq.wrapping_add(1);
            t.packets = t.packets.wrapping_add(1);
            t.octets = t.octets.wrapping_add((packet.data.len() - 12) as u32);
        }
        // No subscriber is fine: nobody is watching.
        let _ = published.tx.send(packet);
    }

    fn track_state(&self, track: usize) -> TrackState {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tracks[track]
    }

    /// A (re)started device: new SSRCs, sequence numbers and RTP clocks from `start_secs`.
    fn restart_identities(&self, rng: &mut Rng, start_secs: f64) {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for t in &mut published.tracks {
            *t = new_track_state(rng, start_secs, t.rate_hz);
        }
        published.last_reports.iter_mut().for_each(|r| *r = None);
    }
}

/// What a new client starts from.
#[derive(Debug)]
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<Packet>>,
    pub starts: Vec<TrackStart>,
    pub reports: Vec<Arc<Packet>>,
}

fn new_track_state(rng: &mut Rng, start_secs: f64, rate_hz: f64) -> TrackState {
    TrackState {
        ssrc: rng.next_u64() as u32,
        next_seq: rng.next_u64() as u16,
        base: rng.next_u64() as u32,
        start_secs,
        rate_hz,
        packets: 0,
        octets: 0,
    }
}

/// Video: either a live encoder or a pre-encoded loop.
enum VideoSource {
    Live {
        encoder: Box<H264Encoder>,
        frame: I420Frame,
    },
    Replay {
        frames: Vec<EncodedFrame>,
    },
}

/// The state of the current stream (it changes on reboot).
struct Stream {
    start_secs: f64,
    /// Audio samples captured since the stream started.
    audio_samples: u64,
}

/// Builds the live stream and starts the capture thread.
pub fn start(cfg: &SimCameraConfig) -> Result<Arc<Live>, String> {
    let mut rng = Rng::new(cfg.seed ^ 0x00ca_3e7a);
    let mut video = if cfg.replay {
        VideoSource::Replay {
            frames: encode_replay_loop(cfg)?,
        }
    } else {
        VideoSource::Live {
            encoder: Box::new(encoder(cfg)?),
            frame: I420Frame::new(cfg.width, cfg.height),
        }
    };
    // The first picture gives the parameter sets for SDP.
    let first = match &mut video {
        VideoSource::Live { encoder, frame } => {
            frame.draw(
                false,
                StripeData {
                    frame_index: 0,
                    capture_unix_micros: None,
                },
            );
            let first = encoder.encode(frame).map_err(|e| e.to_string())?;
            encoder.force_keyframe();
            first
        }
        VideoSource::Replay { frames } => frames[0].clone(),
    };
    let sps = first.nals.iter().find(|n| n[0] & 0x1f == NAL_SPS);
    let pps = first.nals.iter().find(|n| n[0] & 0x1f == NAL_PPS);
    let (Some(sps), Some(pps)) = (sps, pps) else {
        return Err("the H.264 encoder gave no SPS/PPS".into());
    };
    let mut tracks = vec![TrackInfo {
        media: "video",
        payload_type: 96,
        rtpmap: format!("H264/{VIDEO_CLOCK_HZ}"),
        fmtp: Some(sdp_fmtp(sps, pps)),
    }];
    match cfg.audio {
        AudioCodec::Pcma | AudioCodec::Pcmu => {
            let law = law(cfg.audio);
            tracks.push(TrackInfo {
                media: "audio",
                payload_type: law.payload_type(),
                rtpmap: format!("{}/8000", law.encoding_name()),
                fmtp: None,
            });
        }
        AudioCodec::L16 => tracks.push(TrackInfo {
            media: "audio",
            payload_type: 97,
            rtpmap: "L16/16000/1".into(),
            fmtp: None,
        }),
        AudioCodec::Opus => tracks.push(TrackInfo {
            media: "audio",
            payload_type: 111,
            // RFC 7587: always 48000/2 in SDP; the stream itself is mono.
            rtpmap: "opus/48000/2".into(),
            fmtp: Some("sprop-stereo=0;useinbandfec=0".into()),
        }),
        AudioCodec::None => {}
    }
    let opus = match cfg.audio {
        AudioCodec::Opus => Some(OpusMic::new().map_err(|e| e.to_string())?),
        _ => None,
    };
    let (tx, _) = broadcast::channel(PUBLISH_QUEUE);
    let states = clock_rates(cfg, tracks.len())
        .into_iter()
        .map(|rate| new_track_state(&mut rng, 0.0, rate))
        .collect();
    let live = Arc::new(Live {
        published: Mutex::new(Published {
            tx,
            tracks: states,
            last_reports: vec![None; tracks.len()],
        }),
        tracks,
        speaker: Mutex::new(Speaker::new()),
        receiver_reports: Mutex::new(std::collections::VecDeque::new()),
        started: Instant::now(),
        stop: AtomicBool::new(false),
    });
    let mut capture = Capture {
        cfg: cfg.clone(),
        live: Arc::clone(&live),
        video,
        packetizer: H264Packetizer::default(),
        opus,
        rng,
        start_unix_nanos: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64),
    };
    // The first reports go out before anything else, so even the first client can sync at once.
    if cfg.sender_reports {
        capture.send_reports(0.0);
    }
    std::thread::Builder::new()
        .name("sim-camera-capture".into())
        .spawn(move || capture.run())
        .map_err(|e| format!("cannot start the capture thread: {e}"))?;
    Ok(live)
}

/// Each track's true tick rate: nominal × (1 + clock error).
fn clock_rates(cfg: &SimCameraConfig, tracks: usize) -> Vec<f64> {
    let video = f64::from(VIDEO_CLOCK_HZ) * (1.0 + cfg.video_clock_ppm * 1e-6);
    let audio = f64::from(cfg.audio.sample_rate_hz()) * (1.0 + cfg.audio_clock_ppm * 1e-6);
    [video, audio].into_iter().take(tracks).collect()
}

fn encoder(cfg: &SimCameraConfig) -> Result<H264Encoder, String> {
    H264Encoder::new(cfg.fps, cfg.video_bitrate_bps, cfg.gop_frames).map_err(|e| e.to_string())
}

fn law(codec: AudioCodec) -> G711Law {
    if codec == AudioCodec::Pcmu {
        G711Law::MuLaw
    } else {
        G711Law::ALaw
    }
}

/// Two seconds of pattern encoded as one GOP (a whole number of seconds, so flashes stay on the
/// second when it loops).
fn encode_replay_loop(cfg: &SimCameraConfig) -> Result<Vec<EncodedFrame>, String> {
    let len = cfg.fps * 2;
    let mut encoder =
        H264Encoder::new(cfg.fps, cfg.video_bitrate_bps, len).map_err(|e| e.to_string())?;
    let mut frame = I420Frame::new(cfg.width, cfg.height);
    (0..len)
        .map(|i| {
            frame.draw(
                i % cfg.fps == 0,
                StripeData {
                    frame_index: i,
                    capture_unix_micros: None,
                },
            );
            encoder.encode(&frame).map_err(|e| e.to_string())
        })
        .collect()
}

struct Capture {
    cfg: SimCameraConfig,
    live: Arc<Live>,
    video: VideoSource,
    packetizer: H264Packetizer,
    opus: Option<OpusMic>,
    rng: Rng,
    start_unix_nanos: i64,
}

/// The Opus microphone path: 48 kHz mono, 20 ms frames.
struct OpusMic {
    encoder: OpusEncoder,
    /// The encoder's delay in samples: a packet's audio started this long before its input.
    lookahead: u32,
}

impl OpusMic {
    fn new() -> Result<Self, lockstep_opus::OpusError> {
        let mut encoder = OpusEncoder::new(48_000, 1, Application::Audio)?;
        encoder.set_bitrate(64_000)?;
        encoder.set_complexity(5)?;
        let lookahead = encoder.lookahead()?;
        Ok(OpusMic { encoder, lookahead })
    }
}

impl Capture {
    fn run(mut self) {
        let cfg = self.cfg.clone();
        let fps = f64::from(cfg.fps);
        let audio_rate = f64::from(cfg.audio.sample_rate_hz());
        let audio_true_rate = audio_rate * (1.0 + cfg.audio_clock_ppm * 1e-6);
        let samples_per_packet = u64::from(cfg.audio.sample_rate_hz() / AUDIO_PACKETS_PER_SEC);
        let has_audio = self.live.tracks.len() > 1;
        let mut stream = self.new_stream(0.0);
        let mut frame_index: u64 = 0;
        let mut next_report = cfg.report_interval.as_secs_f64();
        let mut rebooted = false;
        let reboot_at = cfg.reboot_after.map(|d| d.as_secs_f64());
        while !self.live.stop.load(Ordering::Relaxed) {
            let next_frame = frame_index as f64 / fps;
            let next_audio = stream.start_secs
                + (stream.audio_samples + samples_per_packet) as f64 / audio_true_rate;
            let mut due = next_frame;
            if has_audio {
                due = due.min(next_audio);
            }
            if cfg.sender_reports {
                due = due.min(next_report);
            }
            if let Some(r) = reboot_at.filter(|_| !rebooted) {
                due = due.min(r);
            }
            if !self.sleep_until(due) {
                break;
            }
            if reboot_at.is_some_and(|r| !rebooted && due >= r) {
                rebooted = true;
                stream = self.new_stream(due + REBOOT_PAUSE_SECS);
                frame_index = (stream.start_secs * fps).ceil() as u64;
                next_report = stream.start_secs;
                if let VideoSource::Live { encoder, .. } = &mut self.video {
                    encoder.force_keyframe();
                }
                continue;
            }
            if due == next_frame && next_frame >= stream.start_secs {
                self.send_frame(frame_index, next_frame);
                frame_index += 1;
            } else if due == next_frame {
                frame_index += 1; // paused by a reboot
            }
            if has_audio && due == next_audio {
                self.send_audio(&mut stream, samples_per_packet, audio_true_rate);
            }
            if cfg.sender_reports && due == next_report {
                self.send_reports(due);
                next_report += cfg.report_interval.as_secs_f64();
            }
        }
    }

    fn new_stream(&mut self, start_secs: f64) -> Stream {
        if start_secs > 0.0 {
            self.live.restart_identities(&mut self.rng, start_secs);
        }
        Stream {
            start_secs,
            audio_samples: 0,
        }
    }

    /// Sleeps until `secs` of true time; false if asked to stop meanwhile.
    fn sleep_until(&self, secs: f64) -> bool {
        let target = self.live.started + Duration::from_secs_f64(secs.max(0.0));
        loop {
            if self.live.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= target {
                return true;
            }
            std::thread::sleep((target - now).min(Duration::from_millis(50)));
        }
    }

    fn send_frame(&mut self, index: u64, capture_secs: f64) {
        let fps = u64::from(self.cfg.fps);
        let encoded = match &mut self.video {
            VideoSource::Live { encoder, frame } => {
                let capture_unix_micros =
                    (self.start_unix_nanos + (capture_secs * 1e9) as i64) / 1_000;
                frame.draw(
                    index % fps == 0,
                    StripeData {
                        frame_index: index as u32,
                        capture_unix_micros: Some(capture_unix_micros as u64),
                    },
                );
                match encoder.encode(frame) {
                    Ok(encoded) => encoded,
                    Err(e) => {
                        tracing::error!("sim-camera: {e}");
                        return;
                    }
                }
            }
            VideoSource::Replay { frames } => {
                frames[(index % frames.len() as u64) as usize].clone()
            }
        };
        let inband = self.cfg.inband_parameter_sets;
        let nals: Vec<&[u8]> = encoded
            .nals
            .iter()
            .filter(|n| inband || !matches!(n[0] & 0x1f, NAL_SPS | NAL_PPS))
            .map(Vec::as_slice)
            .collect();
        let mut payloads = Vec::new();
        self.packetizer.packetize(&nals, &mut payloads);
        let ts = self.live.track_state(0).rtptime_at(capture_secs);
        let count = payloads.len();
        for (i, payload) in payloads.into_iter().enumerate() {
            let state = self.live.track_state(0);
            let packet = rtp_packet(96, i + 1 == count, state.next_seq, ts, state.ssrc, &payload);
            self.live.publish(0, false, packet);
        }
    }

    fn send_audio(&mut self, stream: &mut Stream, samples: u64, true_rate: f64) {
        let offset = self.cfg.audio_offset.as_secs_f64();
        let echo_delay = self.cfg.echo_delay.as_secs_f64();
        let echo_gain = 10f64.powf(self.cfg.echo_gain_db / 20.0);
        let mut pcm = Vec::with_capacity(samples as usize);
        {
            let speaker = self
                .live
                .speaker
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for k in 0..samples {
                let n = stream.audio_samples + k;
                let secs = stream.start_secs + n as f64 / true_rate;
                // The microphone hears the pattern (late by the hidden audio delay) and the
                // speaker's output after the echo path.
                let echo = f64::from(speaker.sample_at(secs - echo_delay)) / 32_768.0;
                let near = if self.cfg.near_voice {
                    near_voice(secs - offset)
                } else {
                    beep_value(secs - offset)
                };
                let value = near + echo * echo_gain;
                pcm.push((value.clamp(-1.0, 1.0) * 32_767.0) as i16);
            }
        }
        // Stamped by count: sample n of the stream is RTP time base + n. A codec with a delay
        // (Opus) stamps its output where that output's audio began, as a careful camera does.
        let mut delay = 0;
        let payload = match (self.cfg.audio, &mut self.opus) {
            (AudioCodec::L16, _) => pcm.iter().flat_map(|s| s.to_be_bytes()).collect(),
            (AudioCodec::Opus, Some(mic)) => {
                delay = mic.lookahead;
                match mic.encoder.encode(&pcm) {
                    Ok(packet) => packet,
                    Err(e) => {
                        tracing::error!("sim-camera: {e}");
                        return;
                    }
                }
            }
            (codec, _) => {
                let mut out = Vec::with_capacity(pcm.len());
                law(codec).encode(&pcm, &mut out);
                out
            }
        };
        let state = self.live.track_state(1);
        let ts = state
            .base
            .wrapping_add(stream.audio_samples as u32)
            .wrapping_sub(delay);
        stream.audio_samples += samples;
        let pt = self.live.tracks[1].payload_type;
        let packet = rtp_packet(pt, true, state.next_seq, ts, state.ssrc, &payload);
        self.live.publish(1, false, packet);
    }

    /// Reports map each track's RTP time at `secs` to the true wallclock at `secs`.
    fn send_reports(&mut self, secs: f64) {
        let ntp = NtpTime::from_unix_nanos(self.start_unix_nanos + (secs * 1e9) as i64);
        for track in 0..self.live.tracks.len() {
            let state = self.live.track_state(track);
            let report = sender_report(
                state.ssrc,
                ntp,
                state.rtptime_at(secs),
                state.packets,
                state.octets,
                "sim-camera@lockstep",
            );
            self.live.publish(track, true, report);
        }
    }
}

/// The voice of someone at the camera, at `secs`: 238 Hz and its harmonics to 3.3 kHz (falling
/// 6 dB an octave), spoken in a third of the 100 ms slots, which slots fixed by a hash of their
/// number (the same in every run).
pub fn near_voice(secs: f64) -> f64 {
    const PITCH_HZ: f64 = 238.0;
    let slot = (secs * 10.0).floor() as i64;
    let hash = (slot as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61;
    if hash % 3 != 0 {
        return 0.0;
    }
    let voiced: f64 = (1..=14)
        .map(|k| (2.0 * std::f64::consts::PI * PITCH_HZ * f64::from(k) * secs).sin() / f64::from(k))
        .sum();
    0.12 * voiced
}

#[cfg(test)]
mod tests {
    use super::near_voice;

    #[test]
    fn the_voice_at_the_camera_speaks_in_a_third_of_its_slots_the_same_every_run() {
        // 100 s of 100 ms slots, probed in each slot's middle.
        let spoken: Vec<bool> = (0..1_000)
            .map(|slot| {
                let secs = f64::from(slot) / 10.0 + 0.05;
                (0..40).any(|k| near_voice(secs + f64::from(k) / 8_000.0).abs() > 0.01)
            })
            .collect();
        let share = spoken.iter().filter(|&&s| s).count() as f64 / spoken.len() as f64;
        assert!(
            (0.25..0.42).contains(&share),
            "spoke in {share:.2} of the slots"
        );
        assert_eq!(near_voice(12.345), near_voice(12.345));
        // Loud enough to hear, never clipping.
        let peak = (0..80_000)
            .map(|n| near_voice(f64::from(n) / 8_000.0).abs())
            .fold(0.0, f64::max);
        assert!((0.1..1.0).contains(&peak), "peak {peak}");
    }
}
