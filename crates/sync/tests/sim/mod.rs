//! A seeded, deterministic simulation of a camera, a network and lockstep's sync pipeline in
//! virtual time. The camera knows the truth (the true capture instant of every sample and frame);
//! the pipeline sees only what a real server sees (RTP, sender reports, arrival times). Each run
//! returns what came out, with the truth next to it.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use lockstep_sync::{
    AudioChunk, AudioDecode, LatencyProfile, LocalInstant, NtpTime, Source, SourceConfig,
    SourceEvent, TrackKind, VideoAssemble, VideoPacket, VideoUnit, FRAME_SSRC,
};

const NANOS: i64 = 1_000_000_000;
const NTP_BASE_NANOS: i64 = 3_950_000_000 * NANOS;

/// splitmix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// What the virtual camera does.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    pub audio_rate_hz: u32,
    pub audio_packet_samples: u32,
    pub audio_clock_ppm: f64,
    pub video_clock_ppm: f64,
    pub fps: u32,
    pub gop_frames: u32,
    /// Sender reports every this often, or none.
    pub report_interval: Option<Duration>,
    /// A delay on the audio path that timestamps and reports don't show.
    pub audio_offset: Duration,
    /// Time from capture to sending a video frame (encoding).
    pub video_encode_delay: Duration,
    /// The camera reboots at this true time: a pause, then new SSRCs and timestamp bases.
    pub reboot_at: Option<Duration>,
    pub reboot_pause: Duration,
    /// RTP-Info is announced at PLAY.
    pub rtp_info: bool,
    /// A WebRTC publisher: every audio packet and video frame arrives as one depacketized
    /// frame (the WHIP front end's input), not as RTP packets.
    pub frame_inputs: bool,
    /// At this true time the sender's wallclock (the NTP time of its reports) steps by the
    /// given nanoseconds (an NTP correction, a user setting the clock).
    pub wallclock_step: Option<(Duration, i64)>,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            audio_rate_hz: 8_000,
            audio_packet_samples: 160,
            audio_clock_ppm: 0.0,
            video_clock_ppm: 0.0,
            fps: 30,
            gop_frames: 60,
            report_interval: Some(Duration::from_secs(5)),
            audio_offset: Duration::ZERO,
            video_encode_delay: Duration::from_millis(5),
            reboot_at: None,
            reboot_pause: Duration::from_millis(500),
            rtp_info: false,
            frame_inputs: false,
            wallclock_step: None,
        }
    }
}

/// What the virtual network does to every packet (RTP and RTCP alike).
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub base_delay: Duration,
    /// Each packet gets a uniformly distributed extra delay up to this.
    pub jitter: Duration,
    pub loss: f64,
    /// Probability that a loss starts a burst, and the burst's length in packets.
    pub burst_loss: f64,
    pub burst_len: u32,
    /// Probability that a packet is held back behind the next few.
    pub reorder: f64,
    pub duplicate: f64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            base_delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            burst_loss: 0.0,
            burst_len: 0,
            reorder: 0.0,
            duplicate: 0.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub duration: Duration,
    pub camera: CameraConfig,
    pub network: NetworkConfig,
    pub profile: LatencyProfile,
    /// The receiver's manual audio trim (`sync_offset_ms`).
    pub audio_trim: Duration,
}

/// The truth a packet carries through the pipeline (a real payload would be media).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truth {
    /// True capture instant of the packet's first sample, or of the frame.
    pub capture_nanos: i64,
    pub frame_index: u64,
    pub keyframe: bool,
    /// Last packet of its frame (RTP marker).
    pub marker: bool,
    pub samples: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
}

/// One output: an audio chunk's first sample or a video frame.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub kind: Kind,
    /// When it was output (local clock == true clock in the simulation).
    pub at_nanos: i64,
    /// Where it sits on the output timeline.
    pub out_nanos: i64,
    pub truth_nanos: i64,
    pub frame_index: u64,
}

impl Output {
    /// Output minus true capture: the end-to-end delay of this sample.
    pub fn delay_nanos(&self) -> i64 {
        self.out_nanos - self.truth_nanos
    }
}

#[derive(Debug, Default)]
pub struct SimResult {
    pub outputs: Vec<Output>,
    pub audio_chunks_sent: u64,
    pub frames_sent: u64,
    pub concealed_samples: u64,
    pub skipped_input_samples: u64,
    pub audio_steps: u64,
    pub frames_dropped: u64,
    pub watchdog_corrections: u64,
    pub max_buffered: usize,
    pub buffer_cap: usize,
    pub final_playout_delay: Duration,
    pub audio_drift_ppm: Option<f64>,
    pub video_drift_ppm: Option<f64>,
    pub clock_source: &'static str,
}

impl SimResult {
    pub fn after(&self, secs: f64) -> impl Iterator<Item = &Output> {
        let from = (secs * NANOS as f64) as i64;
        self.outputs.iter().filter(move |o| o.truth_nanos >= from)
    }

    pub fn of(&self, kind: Kind, from_secs: f64) -> Vec<Output> {
        self.after(from_secs)
            .filter(|o| o.kind == kind)
            .copied()
            .collect()
    }
}

/// What travels on the wire.
#[derive(Debug, Clone)]
pub enum Wire {
    /// A depacketized frame (see [`CameraConfig::frame_inputs`]).
    Frame { track: usize, ts: u32, truth: Truth },
    Rtp {
        track: usize,
        ssrc: u32,
        seq: u16,
        ts: u32,
        truth: Truth,
    },
    Report {
        track: usize,
        ssrc: u32,
        rtp_ts: u32,
        ntp: NtpTime,
    },
}

/// The camera's per-stream identity (changes on reboot).
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    seq: u16,
    ts_base: u32,
    /// True time at which the stream's timestamps start.
    start_nanos: i64,
}

struct Network {
    cfg: NetworkConfig,
    rng: Rng,
    burst_left: u32,
    in_flight: BinaryHeap<Reverse<(i64, u64, usize)>>,
    packets: Vec<Option<Wire>>,
    order: u64,
}

impl Network {
    fn send(&mut self, now_nanos: i64, wire: Wire) {
        if self.burst_left > 0 {
            self.burst_left -= 1;
            return;
        }
        if self.rng.chance(self.cfg.loss) {
            if self.rng.chance(self.cfg.burst_loss) {
                self.burst_left = self.cfg.burst_len.saturating_sub(1);
            }
            return;
        }
        let copies = if self.rng.chance(self.cfg.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = (self.rng.unit() * self.cfg.jitter.as_nanos() as f64) as i64;
            let reorder = if self.rng.chance(self.cfg.reorder) {
                20_000_000 + (self.rng.unit() * 30_000_000.0) as i64
            } else {
                0
            };
            let at = now_nanos + self.cfg.base_delay.as_nanos() as i64 + jitter + reorder;
            self.packets.push(Some(wire.clone()));
            self.in_flight
                .push(Reverse((at, self.order, self.packets.len() - 1)));
            self.order += 1;
        }
    }

    fn next_arrival(&self) -> Option<i64> {
        self.in_flight.peek().map(|Reverse((at, _, _))| *at)
    }

    fn pop(&mut self) -> Option<(i64, Wire)> {
        let Reverse((at, _, index)) = self.in_flight.pop()?;
        Some((at, self.packets[index].take()?))
    }
}

/// An audio packet's truth decoded: its samples and the true capture of the first one.
#[derive(Debug, Clone, Copy)]
pub struct TruthChunk {
    truth: Truth,
    rate_hz: u32,
}

impl AudioChunk for TruthChunk {
    fn samples(&self) -> u32 {
        self.truth.samples
    }
    fn skip_front(&mut self, samples: u32) {
        // The first sample kept (after any skip) is what lands at the output instant.
        self.truth.capture_nanos += i64::from(samples) * NANOS / i64::from(self.rate_hz);
        self.truth.samples -= samples;
    }
}

/// The simulator's "codec": audio packets carry their truth, which is their decoded chunk.
pub struct TruthDecoder {
    rate_hz: u32,
}

impl AudioDecode<Truth> for TruthDecoder {
    type Chunk = TruthChunk;
    fn decode(&mut self, truth: Truth) -> Option<TruthChunk> {
        Some(TruthChunk {
            truth,
            rate_hz: self.rate_hz,
        })
    }
}

/// Reassembles frames from packets as a passthrough server does: a frame ends at its marker,
/// or when the next frame starts (marker lost). Frames with lost packets are still forwarded:
/// the viewer's decoder conceals them; only the scheduler drops (late frames, to a keyframe).
#[derive(Default)]
pub struct TruthFrames {
    /// The frame being assembled: its timestamp, truth and capture time.
    frame: Option<(i64, Truth, LocalInstant)>,
    /// A frame completed behind another by the same packet.
    ready: Option<VideoUnit<Truth>>,
}

impl VideoAssemble<Truth> for TruthFrames {
    type Frame = Truth;
    fn push(&mut self, packet: VideoPacket<Truth>) -> Option<VideoUnit<Truth>> {
        let previous = match self.frame.take() {
            Some((ts, truth, capture)) if ts != packet.ts_ext => Some(VideoUnit {
                capture,
                keyframe: truth.keyframe,
                frame: truth,
            }),
            _ => None,
        };
        let truth = packet.payload;
        if !truth.marker {
            self.frame = Some((packet.ts_ext, truth, packet.capture));
            return previous;
        }
        let unit = VideoUnit {
            capture: packet.capture,
            keyframe: truth.keyframe,
            frame: truth,
        };
        match previous {
            // The marker of the previous frame was lost: it goes out first.
            Some(previous) => {
                self.ready = Some(unit);
                Some(previous)
            }
            None => Some(unit),
        }
    }
    fn poll_unit(&mut self) -> Option<VideoUnit<Truth>> {
        self.ready.take()
    }
    fn reset(&mut self) {
        self.frame = None;
        self.ready = None;
    }
}

/// The receiving side: the production [`Source`] with the simulator's codecs.
pub type SimSource = Source<Truth, TruthDecoder, TruthFrames>;

pub fn sim_source(profile: LatencyProfile, audio_rate_hz: u32, audio_trim: Duration) -> SimSource {
    let mut config = SourceConfig::new(profile);
    config.audio_trim_nanos = audio_trim.as_nanos() as i64;
    Source::new(
        config,
        Some(TruthFrames::default()),
        Some((
            audio_rate_hz,
            TruthDecoder {
                rate_hz: audio_rate_hz,
            },
        )),
    )
}

/// Everything the receiving side does: the production source, and what came out of it.
pub struct Receiver {
    pub source: SimSource,
    pub outputs: Vec<Output>,
    pub max_buffered: usize,
}

impl Receiver {
    pub fn new(profile: LatencyProfile, audio_rate_hz: u32, audio_trim: Duration) -> Self {
        Receiver {
            source: sim_source(profile, audio_rate_hz, audio_trim),
            outputs: Vec::new(),
            max_buffered: 0,
        }
    }

    pub fn receive(&mut self, now: LocalInstant, wire: Wire) {
        match wire {
            Wire::Frame { track, ts, truth } => {
                let _ = self.source.handle_frame(now, kind_of(track), ts, truth);
            }
            Wire::Rtp {
                track,
                ssrc,
                seq,
                ts,
                truth,
            } => {
                let _ = self
                    .source
                    .handle_rtp(now, kind_of(track), ssrc, seq, ts, truth);
                for kind in [TrackKind::Audio, TrackKind::Video] {
                    let held = self.source.track_buffered(kind).map_or(0, |b| b.0);
                    self.max_buffered = self.max_buffered.max(held);
                }
            }
            Wire::Report {
                track,
                ssrc,
                rtp_ts,
                ntp,
            } => {
                let _ = self
                    .source
                    .handle_sender_report(now, kind_of(track), ssrc, rtp_ts, ntp);
            }
        }
    }

    /// Drains the source; returns the wake-up it asked for.
    pub fn drain(&mut self, now: LocalInstant) -> Option<LocalInstant> {
        loop {
            match self.source.poll_output(now) {
                SourceEvent::Audio { out, chunk, .. } => self.outputs.push(Output {
                    kind: Kind::Audio,
                    at_nanos: now.as_nanos(),
                    out_nanos: out.as_nanos(),
                    truth_nanos: chunk.truth.capture_nanos,
                    frame_index: chunk.truth.frame_index,
                }),
                SourceEvent::Video { out, frame, .. } => self.outputs.push(Output {
                    kind: Kind::Video,
                    at_nanos: now.as_nanos(),
                    out_nanos: out.as_nanos(),
                    truth_nanos: frame.capture_nanos,
                    frame_index: frame.frame_index,
                }),
                SourceEvent::Conceal { .. } => {}
                SourceEvent::Drained { next_wakeup } => return next_wakeup,
            }
        }
    }
}

/// The simulated camera sends audio as track 0 and video as track 1.
fn kind_of(track: usize) -> TrackKind {
    if track == 0 {
        TrackKind::Audio
    } else {
        TrackKind::Video
    }
}

/// Runs one simulation to the end.
pub fn run(cfg: &SimConfig) -> SimResult {
    let cam = &cfg.camera;
    let mut rng = Rng::new(cfg.seed);
    let mut net = Network {
        cfg: cfg.network.clone(),
        rng: Rng::new(cfg.seed ^ 0x5eed),
        burst_left: 0,
        in_flight: BinaryHeap::new(),
        packets: Vec::new(),
        order: 0,
    };
    let mut rx = Receiver::new(cfg.profile, cam.audio_rate_hz, cfg.audio_trim);
    let end_nanos = cfg.duration.as_nanos() as i64;
    let reboot_at = cam.reboot_at.map(|d| d.as_nanos() as i64);
    let pause = cam.reboot_pause.as_nanos() as i64;

    let new_stream = |rng: &mut Rng, start_nanos: i64| Stream {
        ssrc: if cam.frame_inputs {
            rng.next_u64();
            FRAME_SSRC
        } else {
            rng.next_u64() as u32
        },
        seq: rng.next_u64() as u16,
        ts_base: rng.next_u64() as u32,
        start_nanos,
    };
    let mut streams = [new_stream(&mut rng, 0), new_stream(&mut rng, 0)];
    let mut rebooted = false;
    let audio_offset = cam.audio_offset.as_nanos() as i64;

    // The device's clocks: media time advances (1 + ppm) ticks per nominal tick of true time.
    let audio_ts = |s: &Stream, true_nanos: i64| -> u32 {
        let ticks = (true_nanos - s.start_nanos) as f64
            * 1e-9
            * f64::from(cam.audio_rate_hz)
            * (1.0 + cam.audio_clock_ppm * 1e-6);
        s.ts_base.wrapping_add(ticks.round() as i64 as u32)
    };
    let video_ts = |s: &Stream, true_nanos: i64| -> u32 {
        let ticks = (true_nanos - s.start_nanos) as f64
            * 1e-9
            * 90_000.0
            * (1.0 + cam.video_clock_ppm * 1e-6);
        s.ts_base.wrapping_add(ticks.round() as i64 as u32)
    };
    // Audio samples are counted: sample n of a stream is captured when the device clock says so.
    let audio_sample_true_nanos = |s: &Stream, n: u64| -> i64 {
        s.start_nanos
            + (n as f64 / (f64::from(cam.audio_rate_hz) * (1.0 + cam.audio_clock_ppm * 1e-6)) * 1e9)
                .round() as i64
    };

    let mut audio_n: u64 = 0;
    let mut frame_i: u64 = 0;
    let mut next_report = 0i64;
    let frame_nanos = NANOS / i64::from(cam.fps);
    let mut result = SimResult::default();

    if cam.rtp_info {
        rx.source
            .handle_rtp_info(LocalInstant::ZERO, TrackKind::Audio, streams[0].ts_base);
        rx.source
            .handle_rtp_info(LocalInstant::ZERO, TrackKind::Video, streams[1].ts_base);
    }

    let mut now = 0i64;
    let mut wakeup: Option<i64> = None;
    loop {
        // The camera's next event, in true time.
        // An audio packet leaves when its last sample is captured.
        let next_audio_send =
            audio_sample_true_nanos(&streams[0], audio_n + u64::from(cam.audio_packet_samples));
        let next_frame_capture = streams[1].start_nanos + frame_i as i64 * frame_nanos;
        let next_video_send = next_frame_capture + cam.video_encode_delay.as_nanos() as i64;
        let camera_next = [
            Some(next_audio_send),
            Some(next_video_send),
            cfg.camera.report_interval.map(|_| next_report),
            reboot_at.filter(|_| !rebooted),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(i64::MAX);
        let t = [Some(camera_next), net.next_arrival(), wakeup]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(i64::MAX)
            .max(now);
        if t > end_nanos {
            break;
        }
        now = t;

        if reboot_at.is_some_and(|r| !rebooted && now >= r) {
            rebooted = true;
            let start = now + pause;
            streams = [new_stream(&mut rng, start), new_stream(&mut rng, start)];
            audio_n = 0;
            frame_i = 0;
            next_report = start;
            continue;
        }
        if now == next_audio_send {
            let s = &mut streams[0];
            let truth = Truth {
                // The hidden audio delay: the sound was captured earlier than the device says.
                capture_nanos: audio_sample_true_nanos(s, audio_n) - audio_offset,
                frame_index: audio_n / u64::from(cam.audio_packet_samples),
                keyframe: true,
                marker: true,
                samples: cam.audio_packet_samples,
            };
            let ts = s.ts_base.wrapping_add(audio_n as u32);
            let wire = if cam.frame_inputs {
                Wire::Frame {
                    track: 0,
                    ts,
                    truth,
                }
            } else {
                Wire::Rtp {
                    track: 0,
                    ssrc: s.ssrc,
                    seq: s.seq,
                    ts,
                    truth,
                }
            };
            net.send(now, wire);
            s.seq = s.seq.wrapping_add(1);
            audio_n += u64::from(cam.audio_packet_samples);
            result.audio_chunks_sent += 1;
        }
        if now == next_video_send {
            let keyframe = frame_i % u64::from(cam.gop_frames) == 0;
            let packets = if cam.frame_inputs {
                1
            } else if keyframe {
                4
            } else {
                1 + rng.next_u64() % 2
            };
            let s = &mut streams[1];
            let ts = video_ts(s, next_frame_capture);
            for p in 0..packets {
                let truth = Truth {
                    capture_nanos: next_frame_capture,
                    frame_index: frame_i,
                    keyframe,
                    marker: p + 1 == packets,
                    samples: 0,
                };
                let wire = if cam.frame_inputs {
                    Wire::Frame {
                        track: 1,
                        ts,
                        truth,
                    }
                } else {
                    Wire::Rtp {
                        track: 1,
                        ssrc: s.ssrc,
                        seq: s.seq,
                        ts,
                        truth,
                    }
                };
                net.send(now + p as i64 * 200_000, wire);
                s.seq = s.seq.wrapping_add(1);
            }
            frame_i += 1;
            result.frames_sent += 1;
        }
        if let Some(interval) = cam.report_interval {
            if now == next_report {
                // Reports are correct: RTP time now on each clock, against the true wallclock
                // (the audio path's hidden delay is, by definition, not in them).
                let step = match cam.wallclock_step {
                    Some((at, step_nanos)) if now >= at.as_nanos() as i64 => step_nanos,
                    _ => 0,
                };
                let ntp = NtpTime::from_nanos_since_1900(NTP_BASE_NANOS + now + step);
                let (a, v) = (streams[0], streams[1]);
                net.send(
                    now,
                    Wire::Report {
                        track: 0,
                        ssrc: a.ssrc,
                        rtp_ts: audio_ts(&a, now),
                        ntp,
                    },
                );
                net.send(
                    now,
                    Wire::Report {
                        track: 1,
                        ssrc: v.ssrc,
                        rtp_ts: video_ts(&v, now),
                        ntp,
                    },
                );
                next_report += interval.as_nanos() as i64;
            }
        }
        while net.next_arrival().is_some_and(|at| at <= now) {
            if let Some((_, wire)) = net.pop() {
                rx.receive(LocalInstant::from_nanos(now), wire);
            }
        }
        wakeup = rx
            .drain(LocalInstant::from_nanos(now))
            .map(|w| w.as_nanos().max(now + 1));
    }

    result.outputs = std::mem::take(&mut rx.outputs);
    let stage = rx.source.stage();
    let rs = stage.retimer().stats();
    result.concealed_samples = rs.concealed_samples;
    result.skipped_input_samples = rs.skipped_input_samples;
    result.audio_steps = rs.steps;
    let vs = stage.scheduler().stats();
    result.frames_dropped = vs.dropped_late + vs.dropped_awaiting_keyframe;
    result.watchdog_corrections = stage.watchdog_stats().corrections;
    result.max_buffered = rx.max_buffered;
    result.buffer_cap = rx
        .source
        .track_buffered(TrackKind::Audio)
        .map_or(0, |b| b.1);
    result.final_playout_delay = rx.source.sync().playout_delay();
    result.audio_drift_ppm = rx.source.drift_ppm(TrackKind::Audio);
    result.video_drift_ppm = rx.source.drift_ppm(TrackKind::Video);
    result.clock_source = rx.source.clock_source().as_str();
    result
}

/// Median of a slice of nanosecond values.
pub fn median(values: &mut [i64]) -> i64 {
    values.sort_unstable();
    values[values.len() / 2]
}
