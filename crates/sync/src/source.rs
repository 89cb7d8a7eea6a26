//! One source's whole timing, wired once: the ingest half ([`SourceSync`]: timeline unwrap,
//! jitter buffer, clocks, playout delay) feeding the output half ([`OutputStage`]: audio retimer,
//! video scheduler, watchdog). Cameras, WHIP publishers, the simulator, the fuzz target and the
//! benches all drive this one type; only the codec work differs, and it is handed in as an
//! [`AudioDecode`] and a [`VideoAssemble`].
//!
//! Inputs: RTP packets with sender reports and RTP-Info (a camera), or depacketized frames with
//! the publisher's sender reports (WHIP: [`Source::handle_frame`], re-fitted by the same
//! sender-report clock at every report). Output: [`Source::poll_output`] until `Drained`.

use crate::{
    ClockSource, JitterStats, LatencyProfile, LocalInstant, NtpTime, OutputStage, ReportError,
    SourceOutput, SourceSync, StageOutput, TimelineRejection, TrackKind, VideoMode, OUTPUT_RATE_HZ,
};

/// A decoded audio chunk as the source sees it: how many samples at which rate.
pub trait AudioChunk {
    fn samples(&self) -> u32;
    /// Drops the first `samples` (the retimer skips late input).
    fn skip_front(&mut self, samples: u32);
}

/// Decodes one audio track's released packets (G.711, Opus, AAC… or a simulator's truth).
pub trait AudioDecode<P> {
    type Chunk: AudioChunk;
    /// One packet in sequence order; `None` when it cannot be decoded (the retimer conceals it
    /// like a lost packet).
    fn decode(&mut self, payload: P) -> Option<Self::Chunk>;
    /// A packet was lost: a frame spread over packets is incomplete.
    fn handle_loss(&mut self) {}
    /// The stream restarted (new SSRC, timestamp jump).
    fn reset(&mut self) {}
    /// How many samples decoded audio lags its packets' timestamps: an AAC encoder's priming
    /// frame, which RTP does not signal. Placed this much earlier, the first real sample
    /// plays at its capture instant.
    fn delay_samples(&self) -> u32 {
        0
    }
}

/// A released video packet with its capture time on the source's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoPacket<P> {
    pub ts_ext: i64,
    pub capture: LocalInstant,
    pub payload: P,
}

/// A complete frame and the capture time of the packets it was assembled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoUnit<F> {
    pub capture: LocalInstant,
    pub keyframe: bool,
    pub frame: F,
}

/// Assembles one video track's released packets into frames (H.264 depacketizing, or nothing
/// for already depacketized frames).
pub trait VideoAssemble<P> {
    type Frame;
    fn push(&mut self, packet: VideoPacket<P>) -> Option<VideoUnit<Self::Frame>>;
    /// A further frame completed by the last packet (one that ended two at once).
    fn poll_unit(&mut self) -> Option<VideoUnit<Self::Frame>> {
        None
    }
    /// A packet was lost: the frame being assembled is incomplete.
    fn handle_loss(&mut self) {}
    /// The stream restarted.
    fn reset(&mut self) {}
}

/// What leaves a source, polled until `Drained`.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent<C, F> {
    /// A frame to send now, stamped `out` on the output timeline.
    Video {
        out: LocalInstant,
        keyframe: bool,
        frame: F,
    },
    /// Decoded audio whose first sample plays at `out` (ahead of time by up to the playout
    /// delay), output position `out_pts_48k`; resample by `ratio` output samples per input
    /// sample. Positions count on one 48 kHz clock per source: `out` = epoch + pts/48 kHz.
    Audio {
        out: LocalInstant,
        out_pts_48k: i64,
        rate_hz: u32,
        chunk: C,
        ratio: f64,
    },
    /// No audio came in time: `samples_48k` of concealment at `out` (position `out_pts_48k`).
    Conceal {
        out: LocalInstant,
        out_pts_48k: i64,
        samples_48k: u32,
    },
    Drained {
        next_wakeup: Option<LocalInstant>,
    },
}

/// One input to a source, from whichever front end: a camera's RTP and RTCP, a publisher's
/// frames and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput<P> {
    Rtp {
        kind: TrackKind,
        ssrc: u32,
        seq: u16,
        ts: u32,
        payload: P,
    },
    /// See [`Source::handle_frame`].
    Frame {
        kind: TrackKind,
        rtp_ts: u32,
        payload: P,
    },
    SenderReport {
        kind: TrackKind,
        ssrc: u32,
        rtp_ts: u32,
        ntp: NtpTime,
    },
    RtpInfo {
        kind: TrackKind,
        rtptime: u32,
    },
}

/// How a source is set up.
#[derive(Debug, Clone, Copy)]
pub struct SourceConfig {
    pub profile: LatencyProfile,
    /// `sync_offset_ms` in ns (see [`SourceSync::set_audio_trim_nanos`]).
    pub audio_trim_nanos: i64,
    pub video_mode: VideoMode,
}

impl SourceConfig {
    pub fn new(profile: LatencyProfile) -> Self {
        SourceConfig {
            profile,
            audio_trim_nanos: 0,
            video_mode: VideoMode::Passthrough,
        }
    }
}

/// What the sync engine knows about one source, for the API and metrics: the same for cameras,
/// WHIP publishers and push producers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStats {
    /// Residual audio-video offset at the output (positive: audio late).
    pub offset_ms: Option<f64>,
    pub audio_drift_ppm: Option<f64>,
    pub video_drift_ppm: Option<f64>,
    /// The larger of the tracks' RFC 3550 interarrival jitter.
    pub jitter_ms: f64,
    /// Lost packets over all packets expected, all tracks.
    pub loss_ratio: f64,
    /// Capture to output: the playout delay.
    pub latency_ms: f64,
    pub clock_source: &'static str,
    pub video_frames: u64,
    pub dropped_frames: u64,
    pub concealed_ms: f64,
    pub corrections: u64,
}

struct AudioTrack<A> {
    index: usize,
    rate_hz: u32,
    decoder: A,
}

struct VideoTrack<V> {
    index: usize,
    assembler: V,
}

/// Frame inputs (WHIP) have no sequence numbers of their own: one per frame, per track.
#[derive(Debug, Clone, Copy, Default)]
struct FrameCounter {
    seq: u16,
    /// A sender report for the track has come.
    reported: bool,
}

/// One source: its tracks, their clocks and the output stage, with the codec work handed in.
pub struct Source<P, A: AudioDecode<P>, V: VideoAssemble<P>> {
    sync: SourceSync<P>,
    stage: OutputStage<V::Frame>,
    audio: Option<AudioTrack<A>>,
    video: Option<VideoTrack<V>>,
    frame_counters: [FrameCounter; 2],
    /// The ingest half's wake-up from the last drain.
    sync_wakeup: Option<LocalInstant>,
    /// The ingest half was drained at this instant and nothing has come in since: polling it
    /// again then finds nothing (the output stage is polled once per event it hands out).
    sync_drained_at: Option<LocalInstant>,
}

impl<P, A: AudioDecode<P>, V: VideoAssemble<P>> std::fmt::Debug for Source<P, A, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("profile", &self.sync.profile())
            .field("audio", &self.audio.as_ref().map(|a| a.rate_hz))
            .field("video", &self.video.is_some())
            .finish_non_exhaustive()
    }
}

impl<P, A: AudioDecode<P>, V: VideoAssemble<P>> Source<P, A, V> {
    /// The video track's assembler (what codec it reads), if the source has video.
    pub fn video_assembler(&self) -> Option<&V> {
        self.video.as_ref().map(|v| &v.assembler)
    }

    /// A source with a video track (90 kHz) and/or an audio track at `rate_hz`.
    pub fn new(config: SourceConfig, video: Option<V>, audio: Option<(u32, A)>) -> Self {
        let mut sync = SourceSync::new(config.profile);
        // The decoder's delay is a trim the codec knows: its audio is placed that much earlier
        // on the capture timeline, and the playout delay sees how late it really is.
        let decoder_delay_nanos = audio.as_ref().map_or(0, |(rate_hz, decoder)| {
            i64::from(decoder.delay_samples()) * 1_000_000_000 / i64::from((*rate_hz).max(1))
        });
        sync.set_audio_trim_nanos(config.audio_trim_nanos + decoder_delay_nanos);
        let video = video.map(|assembler| VideoTrack {
            index: sync.add_track(TrackKind::Video, VIDEO_RATE_HZ),
            assembler,
        });
        let audio = audio.map(|(rate_hz, decoder)| AudioTrack {
            index: sync.add_track(TrackKind::Audio, rate_hz),
            rate_hz,
            decoder,
        });
        Source {
            sync,
            stage: OutputStage::new(config.video_mode, config.profile.max_delay()),
            audio,
            video,
            frame_counters: [FrameCounter::default(); 2],
            sync_wakeup: None,
            sync_drained_at: None,
        }
    }

    fn track_index(&self, kind: TrackKind) -> Option<usize> {
        match kind {
            TrackKind::Audio => self.audio.as_ref().map(|a| a.index),
            TrackKind::Video => self.video.as_ref().map(|v| v.index),
        }
    }

    /// One input that arrived at `now`. What the timeline refuses (a stray packet, a report that
    /// contradicts the fit) is counted where it is refused and otherwise ignored.
    pub fn handle_input(&mut self, now: LocalInstant, input: SourceInput<P>) {
        match input {
            SourceInput::Rtp {
                kind,
                ssrc,
                seq,
                ts,
                payload,
            } => {
                let _ = self.handle_rtp(now, kind, ssrc, seq, ts, payload);
            }
            SourceInput::Frame {
                kind,
                rtp_ts,
                payload,
            } => {
                let _ = self.handle_frame(now, kind, rtp_ts, payload);
            }
            SourceInput::SenderReport {
                kind,
                ssrc,
                rtp_ts,
                ntp,
            } => {
                let _ = self.handle_sender_report(now, kind, ssrc, rtp_ts, ntp);
            }
            SourceInput::RtpInfo { kind, rtptime } => self.handle_rtp_info(now, kind, rtptime),
        }
    }

    /// An RTP packet of the `kind` track arrived at `now`. Packets of a track the source does
    /// not have are ignored.
    pub fn handle_rtp(
        &mut self,
        now: LocalInstant,
        kind: TrackKind,
        ssrc: u32,
        seq: u16,
        ts: u32,
        payload: P,
    ) -> Result<(), TimelineRejection> {
        let Some(track) = self.track_index(kind) else {
            return Ok(());
        };
        self.sync_drained_at = None;
        self.sync
            .handle_rtp(now, track, ssrc, seq, ts, payload)
            .map(|_| ())
    }

    /// A depacketized frame (one access unit, one Opus packet) with its 32-bit RTP time, from a
    /// sender that already reordered its packets (a WebRTC publisher). It goes through the same
    /// timeline and clocks as RTP, numbered in arrival order. Frames of a track before its first
    /// sender report are dropped: a WebRTC sender reports within about a second, and placing them
    /// by arrival until then would leave the tracks apart by their send delays for a moment.
    pub fn handle_frame(
        &mut self,
        now: LocalInstant,
        kind: TrackKind,
        rtp_ts: u32,
        payload: P,
    ) -> Result<(), TimelineRejection> {
        let counter = &mut self.frame_counters[kind as usize];
        if !counter.reported {
            return Ok(());
        }
        let seq = counter.seq;
        counter.seq = seq.wrapping_add(1);
        self.handle_rtp(now, kind, FRAME_SSRC, seq, rtp_ts, payload)
    }

    /// A sender report for the `kind` track (for frame inputs, pass `ssrc` = [`FRAME_SSRC`]).
    pub fn handle_sender_report(
        &mut self,
        now: LocalInstant,
        kind: TrackKind,
        ssrc: u32,
        rtp_ts: u32,
        ntp: NtpTime,
    ) -> Result<(), ReportError> {
        let Some(track) = self.track_index(kind) else {
            return Ok(());
        };
        if ssrc == FRAME_SSRC {
            self.frame_counters[kind as usize].reported = true;
        }
        self.sync_drained_at = None;
        self.sync
            .handle_sender_report(now, track, ssrc, rtp_ts, ntp)
    }

    /// PLAY's `RTP-Info: rtptime` for the `kind` track.
    pub fn handle_rtp_info(&mut self, now: LocalInstant, kind: TrackKind, rtptime: u32) {
        if let Some(track) = self.track_index(kind) {
            self.sync_drained_at = None;
            self.sync.handle_rtp_info(now, track, rtptime);
        }
    }

    /// The next output; call until `Drained`, after every input and at the wake-up it names.
    pub fn poll_output(&mut self, now: LocalInstant) -> SourceEvent<A::Chunk, V::Frame> {
        if self.sync_drained_at != Some(now) {
            if let Some(event) = self.drain_sync(now) {
                return event;
            }
        }
        loop {
            return match self.stage.poll_output(now) {
                StageOutput::Video {
                    out,
                    keyframe,
                    payload,
                } => SourceEvent::Video {
                    out,
                    keyframe,
                    frame: payload,
                },
                StageOutput::Conceal { out_pts, samples } => SourceEvent::Conceal {
                    out: self.stage.retimer().out_time(out_pts).unwrap_or(now),
                    out_pts_48k: out_pts,
                    samples_48k: samples,
                },
                // The next audio's stamp shows the jump; there is nothing to send for it.
                StageOutput::Gap { .. } => continue,
                StageOutput::Drained { next_wakeup } => SourceEvent::Drained {
                    next_wakeup: [next_wakeup, self.sync_wakeup].into_iter().flatten().min(),
                },
            };
        }
    }

    /// Moves released packets from the ingest half into the codecs and the output stage;
    /// returns an audio event as soon as one is ready.
    fn drain_sync(&mut self, now: LocalInstant) -> Option<SourceEvent<A::Chunk, V::Frame>> {
        loop {
            match self.sync.poll_output(now) {
                SourceOutput::Packet(p) => {
                    if let Some(audio) = self.audio.as_mut().filter(|a| a.index == p.track) {
                        let Some(mut chunk) = audio.decoder.decode(p.payload) else {
                            continue;
                        };
                        let rate_hz = audio.rate_hz;
                        let target = self.sync.output_time(p.capture);
                        let plan = self.stage.handle_audio(target, chunk.samples(), rate_hz);
                        let skip = plan.skip_input_samples.min(chunk.samples());
                        if plan.output_samples == 0 || skip == chunk.samples() {
                            continue;
                        }
                        chunk.skip_front(skip);
                        let out = self
                            .stage
                            .retimer()
                            .out_time(plan.out_pts)
                            .unwrap_or(target);
                        return Some(SourceEvent::Audio {
                            out,
                            out_pts_48k: plan.out_pts,
                            rate_hz,
                            chunk,
                            ratio: plan.ratio,
                        });
                    }
                    if let Some(video) = self.video.as_mut().filter(|v| v.index == p.track) {
                        let packet = VideoPacket {
                            ts_ext: p.ts_ext,
                            capture: p.capture,
                            payload: p.payload,
                        };
                        let mut unit = video.assembler.push(packet);
                        while let Some(u) = unit {
                            let target = self.sync.output_time(u.capture);
                            self.stage.handle_video(target, u.keyframe, u.frame);
                            unit = video.assembler.poll_unit();
                        }
                    }
                }
                SourceOutput::Lost { track, .. } => {
                    if let Some(video) = self.video.as_mut().filter(|v| v.index == track) {
                        video.assembler.handle_loss();
                    }
                    if let Some(audio) = self.audio.as_mut().filter(|a| a.index == track) {
                        audio.decoder.handle_loss();
                    }
                }
                SourceOutput::Resync { track, .. } => {
                    if let Some(video) = self.video.as_mut().filter(|v| v.index == track) {
                        video.assembler.reset();
                    }
                    if let Some(audio) = self.audio.as_mut().filter(|a| a.index == track) {
                        audio.decoder.reset();
                    }
                }
                SourceOutput::Drained { next_wakeup } => {
                    self.sync_wakeup = next_wakeup;
                    self.sync_drained_at = Some(now);
                    return None;
                }
            }
        }
    }

    /// How long after capture every track is output now: `out` − this is a sample's capture
    /// instant (the echo canceller lines the camera's microphone up with what it played).
    pub fn playout_delay(&self) -> std::time::Duration {
        self.sync.playout_delay()
    }

    /// What the source knows of its sync state.
    pub fn stats(&self) -> SourceStats {
        let tracks: Vec<usize> = self
            .video
            .as_ref()
            .map(|v| v.index)
            .into_iter()
            .chain(self.audio.as_ref().map(|a| a.index))
            .collect();
        let (mut lost, mut received) = (0u64, 0u64);
        for &t in &tracks {
            let s = self.sync.track_stats(t);
            lost += s.lost;
            received += s.received.saturating_sub(s.duplicates);
        }
        let jitter = tracks
            .iter()
            .map(|&t| self.sync.track_jitter(t))
            .max()
            .unwrap_or_default();
        let video = self.stage.scheduler().stats();
        let retimer = self.stage.retimer().stats();
        SourceStats {
            offset_ms: self.stage.offset_nanos().map(|n| n as f64 / 1e6),
            audio_drift_ppm: self.drift_ppm(TrackKind::Audio),
            video_drift_ppm: self.drift_ppm(TrackKind::Video),
            jitter_ms: jitter.as_secs_f64() * 1e3,
            loss_ratio: if lost + received == 0 {
                0.0
            } else {
                lost as f64 / (lost + received) as f64
            },
            latency_ms: self.sync.playout_delay().as_secs_f64() * 1e3,
            clock_source: self.sync.clock_source().as_str(),
            video_frames: video.frames,
            dropped_frames: video.dropped_late + video.dropped_awaiting_keyframe,
            concealed_ms: retimer.concealed_samples as f64 * 1e3 / f64::from(OUTPUT_RATE_HZ),
            corrections: self.stage.watchdog_stats().corrections,
        }
    }

    pub fn drift_ppm(&self, kind: TrackKind) -> Option<f64> {
        self.sync.track_drift_ppm(self.track_index(kind)?)
    }

    pub fn track_stats(&self, kind: TrackKind) -> Option<JitterStats> {
        Some(self.sync.track_stats(self.track_index(kind)?))
    }

    /// Packets held in the track's jitter buffer, and its cap.
    pub fn track_buffered(&self, kind: TrackKind) -> Option<(usize, usize)> {
        Some(self.sync.track_buffered(self.track_index(kind)?))
    }

    pub fn clock_source(&self) -> ClockSource {
        self.sync.clock_source()
    }

    /// The ingest half, for what only it knows (playout delay, profile).
    pub fn sync(&self) -> &SourceSync<P> {
        &self.sync
    }

    /// The output half (retimer, scheduler and watchdog statistics).
    pub fn stage(&self) -> &OutputStage<V::Frame> {
        &self.stage
    }
}

/// The one video clock rate (RTP for every video codec).
pub const VIDEO_RATE_HZ: u32 = 90_000;

/// The SSRC frame inputs are filed under (a WebRTC stack hands over frames, not SSRCs).
pub const FRAME_SSRC: u32 = 0x4c53_5446;
