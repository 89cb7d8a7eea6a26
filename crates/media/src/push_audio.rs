//! A push source's audio (a talking avatar's speech): PCM chunks from the producer → 48 kHz Opus
//! packets on a clock that never stalls.
//!
//! Chunks are placed on a queue at the input rate by the output position their capture time
//! maps to (or appended, when unstamped). The encoder is fed from that queue just in time, one
//! 10 ms block after another, when the packet due next does not exist yet; where the queue has
//! run dry it is fed silence. So the packets advance exactly 960 ticks each for as long as the
//! session lasts: an underrun or a barge-in (`flush`) never stalls or shifts the timeline, and
//! audio that arrives after its place was played is dropped, not played late.
//!
//! Sans-IO: every time is an argument, in 48 kHz ticks of the output timeline.

use std::collections::VecDeque;

use crate::live_audio::{LiveAudioEncoder, LiveAudioError, OpusPacket, LIVE_RATE_HZ};

/// The most audio a producer may queue ahead (a whole answer of a talking avatar fits).
pub const MAX_QUEUE_SECS: u32 = 120;
/// A stamped chunk this close to the end of the queue continues it (stamps are rounded).
const SNAP_MS: u32 = 1;
/// A 10 ms block at or above this RMS is speech (−45 dBFS).
const VOICED_RMS: f64 = 184.0;
/// Speech has ended after this much silence at the output.
const SPEECH_HANGOVER_TICKS: i64 = LIVE_RATE_HZ as i64 * 3 / 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    S16le,
    F32le,
}

impl SampleFormat {
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::S16le => 2,
            SampleFormat::F32le => 4,
        }
    }
}

/// What the producer's PCM is: rate, interleaved channels, sample type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    pub rate_hz: u32,
    pub channels: u16,
    pub sample: SampleFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum PushAudioError {
    #[error("an audio chunk of {bytes} bytes is not whole {channels}-channel {sample:?} frames ({frame} bytes each)")]
    PartialFrame {
        bytes: usize,
        channels: u16,
        sample: SampleFormat,
        frame: usize,
    },
    #[error("more than {MAX_QUEUE_SECS} s of audio queued: wait for it to play, or flush")]
    QueueFull,
    #[error(transparent)]
    Encoder(#[from] LiveAudioError),
}

impl PcmFormat {
    /// Bytes of one sample frame (every channel).
    pub fn frame_bytes(&self) -> usize {
        usize::from(self.channels) * self.sample.bytes()
    }

    /// Little-endian interleaved samples → mono i16 (channels averaged).
    pub fn decode_mono(&self, bytes: &[u8], out: &mut Vec<i16>) -> Result<(), PushAudioError> {
        let frame = self.frame_bytes();
        if frame == 0 || bytes.len() % frame != 0 {
            return Err(PushAudioError::PartialFrame {
                bytes: bytes.len(),
                channels: self.channels,
                sample: self.sample,
                frame,
            });
        }
        let channels = f32::from(self.channels);
        out.extend(bytes.chunks_exact(frame).map(|f| {
            let sum: f32 = match self.sample {
                SampleFormat::S16le => f
                    .chunks_exact(2)
                    .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])))
                    .sum(),
                SampleFormat::F32le => f
                    .chunks_exact(4)
                    .map(|s| f32::from_le_bytes([s[0], s[1], s[2], s[3]]) * 32768.0)
                    .filter(|v| v.is_finite())
                    .sum(),
            };
            (sum / channels).round().clamp(-32768.0, 32767.0) as i16
        }));
        Ok(())
    }
}

/// Where a chunk goes on the output timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Its first sample plays at this position (a stamped chunk).
    At(i64),
    /// After what is queued, but not before this position (an unstamped chunk: "now").
    AfterQueued { earliest: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushAudioEvent {
    /// The first packet with speech went out; `pts` is where its speech starts.
    SpeakingStarted {
        pts: i64,
    },
    SpeakingEnded {
        pts: i64,
    },
    /// The queue ran dry in the middle of speech: silence was sent in its place.
    Underrun {
        pts: i64,
    },
}

/// Counters for the producer's `stats` and the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushAudioCounters {
    pub packets: u64,
    pub underruns: u64,
    /// Samples (input rate) that arrived after their place had been played.
    pub late_samples: u64,
    /// Samples dropped by `flush`.
    pub flushed_samples: u64,
}

#[derive(Debug)]
pub struct PushAudio {
    format: PcmFormat,
    encoder: LiveAudioEncoder,
    /// Output samples per input sample.
    ratio: f64,
    /// Output position of input sample 0.
    origin: i64,
    /// Input samples fed to the encoder so far; `queue[0]` is input sample `fed`.
    fed: i64,
    queue: VecDeque<i16>,
    /// Output ranges fed with speech, oldest first (merged).
    voiced: VecDeque<(i64, i64)>,
    /// Whether the last block fed had speech (an empty queue then is an underrun).
    feeding_speech: bool,
    held: VecDeque<OpusPacket>,
    /// When to start feeding, before the first packet is out.
    first_due: i64,
    /// The pts of the next packet to release, once the first is out.
    next_pts: Option<i64>,
    speaking: bool,
    last_voiced_end: i64,
    scratch: Vec<i16>,
    packets: Vec<OpusPacket>,
    counters: PushAudioCounters,
    events: Vec<PushAudioEvent>,
}

impl PushAudio {
    /// A session whose first input sample would play at output position `origin`.
    pub fn new(format: PcmFormat, origin: i64) -> Result<Self, PushAudioError> {
        let encoder = LiveAudioEncoder::fixed_frames()?;
        // Feeding starts when the first packet is about due (its input begins at `origin`),
        // not before: the producer's first chunks may still be on their way.
        let first_due = origin - encoder.lookahead();
        Ok(PushAudio {
            format,
            encoder,
            ratio: f64::from(LIVE_RATE_HZ) / f64::from(format.rate_hz),
            origin,
            fed: 0,
            queue: VecDeque::new(),
            voiced: VecDeque::new(),
            feeding_speech: false,
            held: VecDeque::new(),
            first_due,
            next_pts: None,
            speaking: false,
            last_voiced_end: origin,
            scratch: Vec::new(),
            packets: Vec::new(),
            counters: PushAudioCounters::default(),
            events: Vec::new(),
        })
    }

    pub fn format(&self) -> PcmFormat {
        self.format
    }

    pub fn counters(&self) -> PushAudioCounters {
        self.counters
    }

    /// Audio queued and not yet fed to the encoder, in ms.
    pub fn queued_ms(&self) -> u64 {
        self.queue.len() as u64 * 1000 / u64::from(self.format.rate_hz)
    }

    /// The output position of input sample `index`.
    fn position(&self, index: i64) -> i64 {
        self.origin + (index as f64 * self.ratio).round() as i64
    }

    /// The input sample that plays at output position `pts`.
    fn index(&self, pts: i64) -> i64 {
        ((pts - self.origin) as f64 / self.ratio).round() as i64
    }

    /// Places a chunk of the producer's PCM. Returns how many of its samples came too late.
    pub fn push(&mut self, placement: Placement, bytes: &[u8]) -> Result<u64, PushAudioError> {
        let mut pcm = std::mem::take(&mut self.scratch);
        pcm.clear();
        let decoded = self.format.decode_mono(bytes, &mut pcm);
        let placed = decoded.and_then(|()| self.place(placement, &pcm));
        self.scratch = pcm;
        placed
    }

    fn place(&mut self, placement: Placement, pcm: &[i16]) -> Result<u64, PushAudioError> {
        let queue_end = self.queue.len() as i64;
        let snap = i64::from(self.format.rate_hz * SNAP_MS / 1000);
        let mut start = match placement {
            Placement::At(pts) => {
                let k = self.index(pts) - self.fed;
                if (k - queue_end).abs() <= snap {
                    queue_end
                } else {
                    k
                }
            }
            Placement::AfterQueued { earliest } => (self.index(earliest) - self.fed).max(queue_end),
        };
        let mut pcm = pcm;
        let mut late = 0;
        if start < 0 {
            late = (-start).min(pcm.len() as i64) as usize;
            pcm = &pcm[late..];
            start = 0;
            self.counters.late_samples += late as u64;
        }
        let start = start as usize;
        let end = start + pcm.len();
        if end as u64 > u64::from(MAX_QUEUE_SECS * self.format.rate_hz) {
            return Err(PushAudioError::QueueFull);
        }
        if self.queue.len() < end {
            self.queue.resize(end, 0);
        }
        for (slot, &sample) in self.queue.range_mut(start..end).zip(pcm) {
            *slot = sample;
        }
        // Mark speech by 10 ms blocks.
        let block = (self.format.rate_hz / 100).max(1) as usize;
        for (i, chunk) in pcm.chunks(block).enumerate() {
            let energy: f64 = chunk.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            if (energy / chunk.len() as f64).sqrt() >= VOICED_RMS {
                let first = self.fed + (start + i * block) as i64;
                let range = (
                    self.position(first),
                    self.position(first + chunk.len() as i64),
                );
                self.mark_voiced(range);
            }
        }
        Ok(late as u64)
    }

    fn mark_voiced(&mut self, (from, to): (i64, i64)) {
        if let Some(last) = self.voiced.back_mut() {
            if from <= last.1 && to >= last.0 {
                *last = (last.0.min(from), last.1.max(to));
                return;
            }
        }
        self.voiced.push_back((from, to));
        self.voiced.make_contiguous().sort_unstable();
    }

    /// Barge-in: everything queued and not yet encoded is dropped (at most one block and a
    /// packet already encoded still play: ~30 ms). Returns the ms dropped.
    pub fn flush(&mut self) -> u64 {
        let dropped = self.queue.len() as u64;
        self.counters.flushed_samples += dropped;
        self.queue.clear();
        let fed_to = self.position(self.fed);
        self.voiced.retain_mut(|r| {
            r.1 = r.1.min(fed_to);
            r.0 < r.1
        });
        dropped * 1000 / u64::from(self.format.rate_hz)
    }

    /// When the next packet is due (48 kHz ticks): call [`PushAudio::release`] then.
    pub fn next_due(&self) -> i64 {
        self.held
            .front()
            .map_or(self.next_pts.unwrap_or(self.first_due), |p| p.pts)
    }

    /// Every packet due by `now`, in order, each exactly one frame after the last; the encoder
    /// is fed (with silence where nothing came) until the packet due now exists.
    pub fn release(
        &mut self,
        now: i64,
        out: &mut Vec<OpusPacket>,
    ) -> Result<Vec<PushAudioEvent>, PushAudioError> {
        loop {
            match self.held.front() {
                Some(p) if p.pts <= now => {
                    if let Some(packet) = self.held.pop_front() {
                        self.next_pts = Some(packet.pts + crate::OPUS_FRAME_SAMPLES as i64);
                        self.note_speech(packet.pts);
                        self.counters.packets += 1;
                        out.push(packet);
                    }
                }
                Some(_) => break,
                None if self.next_pts.unwrap_or(self.first_due) <= now => self.feed_block()?,
                None => break,
            }
        }
        Ok(std::mem::take(&mut self.events))
    }

    /// Feeds the encoder one 10 ms block from the queue (silence where it is short).
    fn feed_block(&mut self) -> Result<(), PushAudioError> {
        let block = (self.format.rate_hz / 100).max(1) as usize;
        let queued = self.queue.len().min(block);
        let mut pcm = std::mem::take(&mut self.scratch);
        pcm.clear();
        pcm.extend(self.queue.drain(..queued));
        pcm.resize(block, 0);
        let at = self.position(self.fed);
        let speech = self
            .voiced
            .iter()
            .any(|r| r.0 < self.position(self.fed + block as i64) && r.1 > at);
        if queued < block && self.feeding_speech {
            self.counters.underruns += 1;
            self.events.push(PushAudioEvent::Underrun { pts: at });
        }
        self.feeding_speech = speech;
        let mut packets = std::mem::take(&mut self.packets);
        let encoded =
            self.encoder
                .push_audio(at, self.format.rate_hz, &pcm, self.ratio, &mut packets);
        self.fed += block as i64;
        self.scratch = pcm;
        self.held.extend(
            packets
                .drain(..)
                .filter(|p| self.next_pts.is_none_or(|next| p.pts >= next)),
        );
        self.packets = packets;
        encoded?;
        Ok(())
    }

    /// Speaking events for a packet going out at `pts`.
    fn note_speech(&mut self, pts: i64) {
        let lookahead = self.encoder.lookahead();
        let (from, to) = (
            pts + lookahead,
            pts + lookahead + crate::OPUS_FRAME_SAMPLES as i64,
        );
        while self.voiced.front().is_some_and(|r| r.1 <= from) {
            if let Some(r) = self.voiced.pop_front() {
                self.last_voiced_end = self.last_voiced_end.max(r.1);
            }
        }
        let voiced = self.voiced.front().filter(|r| r.0 < to).copied();
        match voiced {
            Some((start, end)) => {
                self.last_voiced_end = self.last_voiced_end.max(end.min(to));
                if !self.speaking {
                    self.speaking = true;
                    self.events.push(PushAudioEvent::SpeakingStarted {
                        pts: start.max(from),
                    });
                }
            }
            None if self.speaking && from - self.last_voiced_end >= SPEECH_HANGOVER_TICKS => {
                self.speaking = false;
                self.events.push(PushAudioEvent::SpeakingEnded {
                    pts: self.last_voiced_end,
                });
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_opus::OpusDecoder;

    const RATE: u32 = 24_000;
    const FORMAT: PcmFormat = PcmFormat {
        rate_hz: RATE,
        channels: 1,
        sample: SampleFormat::S16le,
    };

    fn bytes(pcm: &[i16]) -> Vec<u8> {
        pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// 20 ms at 24 kHz: a 440 Hz tone, or silence.
    fn chunk(index: i64, loud: bool) -> Vec<u8> {
        let pcm: Vec<i16> = (0..480)
            .map(|i| {
                let t = (index * 480 + i) as f64 / f64::from(RATE);
                if loud {
                    ((t * 440.0 * std::f64::consts::TAU).sin() * 12_000.0) as i16
                } else {
                    0
                }
            })
            .collect();
        bytes(&pcm)
    }

    /// Runs the release clock every ms from `from` to `to` (48 kHz ticks).
    fn run(
        audio: &mut PushAudio,
        from: i64,
        to: i64,
        out: &mut Vec<OpusPacket>,
    ) -> Vec<PushAudioEvent> {
        let mut events = Vec::new();
        let mut now = from;
        while now < to {
            events.extend(audio.release(now, out).unwrap());
            now += 48;
        }
        events
    }

    fn assert_contiguous(packets: &[OpusPacket]) {
        for pair in packets.windows(2) {
            assert_eq!(
                pair[1].pts - pair[0].pts,
                960,
                "timestamps stalled or jumped"
            );
        }
    }

    /// The first output position where the decoded audio is loud.
    fn first_loud(packets: &[OpusPacket], after: i64) -> Option<i64> {
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        for p in packets {
            let pcm = dec.decode(Some(&p.data)).unwrap();
            if let Some(i) = pcm.iter().position(|s| s.unsigned_abs() > 3000) {
                let at = p.pts + i as i64;
                if at >= after {
                    return Some(at);
                }
            }
        }
        None
    }

    #[test]
    fn underrun_keeps_the_clock_and_speech_lands_at_its_stamps() {
        let origin = 480_000;
        let mut audio = PushAudio::new(FORMAT, origin).unwrap();
        let mut out = Vec::new();
        let mut events = Vec::new();
        // One second of speech stamped from the origin, pushed in real time 50 ms ahead.
        for n in 0..50 {
            audio
                .push(Placement::At(origin + n * 960), &chunk(n, true))
                .unwrap();
            events.extend(run(
                &mut audio,
                origin - 2_400 + n * 960,
                origin - 2_400 + (n + 1) * 960,
                &mut out,
            ));
        }
        // The speech broke off (an underrun); two seconds of nothing, then speech stamped 3 s
        // after the origin that ends properly, with silence.
        events.extend(run(&mut audio, origin + 47_600, origin + 141_600, &mut out));
        audio
            .push(Placement::At(origin + 144_000), &chunk(0, true))
            .unwrap();
        audio
            .push(Placement::At(origin + 144_960), &chunk(1, false))
            .unwrap();
        events.extend(run(
            &mut audio,
            origin + 141_600,
            origin + 192_000,
            &mut out,
        ));
        assert_contiguous(&out);
        assert!(out.len() >= 195, "{} packets", out.len());
        // The clock did not wait: a packet for every 20 ms since the first one.
        let span = out.last().unwrap().pts - out[0].pts;
        assert_eq!(span / 960 + 1, out.len() as i64);
        let second = first_loud(&out, origin + 96_000).expect("the second burst plays");
        assert!(
            (second - (origin + 144_000)).abs() <= 48,
            "second burst at {second}"
        );
        let first = first_loud(&out, 0).unwrap();
        assert!((first - origin).abs() <= 48, "first burst at {first}");
        assert_eq!(audio.counters().underruns, 1, "{events:?}");
        let kinds: Vec<_> = events
            .iter()
            .map(|e| match e {
                PushAudioEvent::SpeakingStarted { .. } => "started",
                PushAudioEvent::SpeakingEnded { .. } => "ended",
                PushAudioEvent::Underrun { .. } => "underrun",
            })
            .collect();
        assert_eq!(
            kinds,
            ["started", "underrun", "ended", "started", "ended"],
            "{events:?}"
        );
    }

    #[test]
    fn flush_drops_the_queue_at_once_and_the_clock_goes_on() {
        let origin = 96_000;
        let mut audio = PushAudio::new(FORMAT, origin).unwrap();
        // A whole 5 s answer queued at once, unstamped.
        for n in 0..250 {
            audio
                .push(Placement::AfterQueued { earliest: origin }, &chunk(n, true))
                .unwrap();
        }
        assert!(audio.queued_ms() >= 4_900, "{}", audio.queued_ms());
        let mut out = Vec::new();
        run(&mut audio, origin - 2_400, origin + 48_000, &mut out);
        let dropped = audio.flush();
        assert!((3_900..=4_000).contains(&dropped), "dropped {dropped} ms");
        let flushed_at = origin + 48_000;
        run(&mut audio, flushed_at, origin + 144_000, &mut out);
        assert_contiguous(&out);
        // Speech stops within 40 ms of the flush (one block and a packet were encoded).
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        let mut last_loud = 0;
        for p in &out {
            let pcm = dec.decode(Some(&p.data)).unwrap();
            if let Some(i) = pcm.iter().rposition(|s| s.unsigned_abs() > 3000) {
                last_loud = p.pts + i as i64;
            }
        }
        assert!(
            last_loud > flushed_at && last_loud < flushed_at + 48 * 40,
            "last speech at {} ms after the flush",
            (last_loud - flushed_at) / 48
        );
    }

    #[test]
    fn late_audio_is_dropped_not_played_late() {
        let origin = 96_000;
        let mut audio = PushAudio::new(FORMAT, origin).unwrap();
        let mut out = Vec::new();
        run(&mut audio, origin, origin + 48_000, &mut out);
        // Stamped for a place that has already been played.
        let late = audio
            .push(Placement::At(origin + 24_000), &chunk(0, true))
            .unwrap();
        assert_eq!(late, 480);
        run(&mut audio, origin + 48_000, origin + 96_000, &mut out);
        assert_contiguous(&out);
        assert_eq!(first_loud(&out, 0), None);
        assert_eq!(audio.counters().late_samples, 480);
    }

    #[test]
    fn formats_decode_to_mono_and_partial_frames_are_refused() {
        let stereo = PcmFormat {
            rate_hz: 48_000,
            channels: 2,
            sample: SampleFormat::S16le,
        };
        let mut out = Vec::new();
        stereo
            .decode_mono(&bytes(&[1000, 3000, -2000, -4000]), &mut out)
            .unwrap();
        assert_eq!(out, [2000, -3000]);
        let float = PcmFormat {
            rate_hz: 16_000,
            channels: 1,
            sample: SampleFormat::F32le,
        };
        out.clear();
        let f: Vec<u8> = [0.5f32, -1.0, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        float.decode_mono(&f, &mut out).unwrap();
        assert_eq!(out, [16384, -32768, 0]);
        let err = stereo.decode_mono(&[0; 6], &mut out).unwrap_err();
        assert!(err.to_string().contains("6 bytes"), "{err}");
    }
}
