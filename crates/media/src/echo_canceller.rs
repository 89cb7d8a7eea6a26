//! Echo cancellation on a camera's microphone while someone talks through its speaker: WebRTC's
//! AEC3 (the pure-Rust `sonora` port) with its residual echo suppression and comfort noise.
//!
//! AEC3 wants the speaker's signal ("render") and the microphone's ("capture") in 10 ms frames,
//! each render frame handed over before the capture frames that hold its echo, and finds the
//! delay between them itself (about 0–500 ms). We have both with times on one clock: the
//! reference with the instants the camera plays it at ([`EchoReference`], the RTP timeline), the
//! microphone with its capture instants (counted by the caller from the synchronized timeline).
//! So before each capture frame,
//! the render stream is fed up to that frame's capture instant — silence where nothing was sent
//! — and the delay AEC3 has to find is only the loop's: network, the camera's playout buffer
//! and the room. Render and capture rates may differ (an 8 kHz speaker, a 16 kHz microphone).
//! A loop longer than AEC3 covers (a camera that buffers its backchannel half a second) is
//! found by [`LoopDelay`] and the reference fed that much later, less a margin.

use sonora::config::EchoCanceller as EchoConfig;
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::echo_reference::EchoReference;
use crate::loop_delay::LoopDelay;

/// AEC3's frame.
const FRAME_NS: i64 = 10_000_000;

/// A render stream further behind than this (a pause in the microphone) restarts near now.
const MAX_RENDER_CATCH_UP_NS: i64 = 1_000_000_000;

/// Loops up to this long are left to AEC3's own estimator; a longer one is shortened to
/// `LOOP_LEFT_TO_AEC3_NS` by feeding the reference later.
const LOOP_AEC3_COVERS_NS: i64 = 450_000_000;
const LOOP_LEFT_TO_AEC3_NS: i64 = 250_000_000;

/// Two loop measurements this close are the same loop.
const ESTIMATES_AGREE_NS: i64 = 50_000_000;

/// Measurements in a row that must agree before the lead moves (half a second apart, over
/// 3 s windows that overlap: one agreeing neighbour proves little).
const CONFIRMATIONS: u32 = 3;

/// AEC3 has the echo when it says it takes out at least this much of it.
const AEC3_HAS_IT_DB: f64 = 10.0;

/// The loop is measured again after this many capture frames (0.5 s).
const MEASURE_EVERY_FRAMES: u32 = 50;

/// The lead changes only by more than this (each change costs AEC3 a re-convergence).
const LEAD_STEP_NS: i64 = 100_000_000;

pub struct EchoCanceller {
    apm: AudioProcessing,
    capture_frame: usize,
    render_frame: usize,
    /// Where the render stream has been fed up to (the caller's clock).
    render_cursor_ns: Option<i64>,
    /// How much later than its stamp the reference is fed (a long loop's pre-alignment).
    lead_ns: i64,
    /// The loop's delay as last measured.
    loop_ns: Option<i64>,
    /// The previous correlation estimate (a lead follows `CONFIRMATIONS` that agree).
    previous_estimate_ns: Option<i64>,
    /// How many measurements in a row agreed with it.
    agreeing: u32,
    loop_delay: LoopDelay,
    frames_since_measured: u32,
    render: Vec<i16>,
    render_f32: Vec<f32>,
    render_out: Vec<f32>,
    capture_f32: Vec<f32>,
    capture_out: Vec<f32>,
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller")
            .field("capture_frame", &self.capture_frame)
            .field("render_frame", &self.render_frame)
            .finish_non_exhaustive()
    }
}

impl EchoCanceller {
    /// A canceller for a microphone at `capture_rate_hz` and a speaker at `render_rate_hz`.
    pub fn new(capture_rate_hz: u32, render_rate_hz: u32) -> Self {
        let config = Config {
            echo_canceller: Some(EchoConfig::default()),
            ..Default::default()
        };
        let apm = AudioProcessing::builder()
            .config(config)
            .capture_config(StreamConfig::new(capture_rate_hz, 1))
            .render_config(StreamConfig::new(render_rate_hz, 1))
            .build();
        let capture_frame = capture_rate_hz as usize / 100;
        let render_frame = render_rate_hz as usize / 100;
        EchoCanceller {
            apm,
            capture_frame,
            render_frame,
            render_cursor_ns: None,
            lead_ns: 0,
            loop_ns: None,
            previous_estimate_ns: None,
            agreeing: 0,
            loop_delay: LoopDelay::default(),
            frames_since_measured: 0,
            render: vec![0; render_frame],
            render_f32: vec![0.0; render_frame],
            render_out: vec![0.0; render_frame],
            capture_f32: vec![0.0; capture_frame],
            capture_out: vec![0.0; capture_frame],
        }
    }

    /// Starts from a loop measured before (an earlier talk with this camera: the loop is the
    /// camera's buffers and room, steady from one talk to the next), lined up at once when AEC3
    /// does not cover it, instead of after the seconds it takes to measure.
    pub fn remembering(mut self, loop_ns: Option<i64>) -> Self {
        if let Some(loop_ns) = loop_ns {
            self.loop_ns = Some(loop_ns);
            if loop_ns > LOOP_AEC3_COVERS_NS {
                self.lead_ns = loop_ns - LOOP_LEFT_TO_AEC3_NS;
            }
        }
        self
    }

    /// Whether a chunk of `samples` is whole 10 ms frames (G.711's 20 ms and Opus's are; an
    /// AAC frame of 1024 is not, and is not cancelled: its remainder would lag the picture).
    pub fn fits(&self, samples: usize) -> bool {
        self.capture_frame > 0 && samples % self.capture_frame == 0
    }

    /// Removes the speaker's echo from `capture`, whose first sample was captured at
    /// `captured_ns`; the speaker's signal comes from `reference`. A chunk that does not
    /// [`fit`](Self::fits) is left as it is.
    pub fn process(&mut self, captured_ns: i64, capture: &mut [i16], reference: &EchoReference) {
        if !self.fits(capture.len()) {
            return;
        }
        for (k, frame) in capture.chunks_exact_mut(self.capture_frame).enumerate() {
            let frame_ns = captured_ns + k as i64 * FRAME_NS;
            self.feed_render(frame_ns + FRAME_NS - self.lead_ns, reference);
            self.loop_delay
                .capture(frame_ns.div_euclid(FRAME_NS), loudness(frame));
            self.measure_loop();
            for (f, &s) in self.capture_f32.iter_mut().zip(frame.iter()) {
                *f = f32::from(s) / 32_768.0;
            }
            if self
                .apm
                .process_capture_f32(&[&self.capture_f32], &mut [&mut self.capture_out])
                .is_ok()
            {
                for (s, &f) in frame.iter_mut().zip(self.capture_out.iter()) {
                    *s = (f * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
                }
            }
        }
    }

    /// How much later than sent the reference is fed now (0 unless the loop is long).
    pub fn lead_ns(&self) -> i64 {
        self.lead_ns
    }

    /// How much echo AEC3 says it takes out (echo return loss enhancement, dB).
    pub fn erle_db(&self) -> Option<f64> {
        self.apm.statistics().echo_return_loss_enhancement
    }

    /// The delay from the speaker to the microphone, once measured.
    pub fn loop_ns(&self) -> Option<i64> {
        self.loop_ns
    }

    /// Twice a second: the loop's delay, and the reference's lead when AEC3 cannot cover it —
    /// only while AEC3 has not got the echo (its echo return loss enhancement under
    /// `AEC3_HAS_IT_DB`; its delay figure is no help, it reports one steadily without the
    /// echo), and only for a loop longer than it covers, measured the same `CONFIRMATIONS`
    /// times in a row.
    fn measure_loop(&mut self) {
        self.frames_since_measured += 1;
        if self.frames_since_measured < MEASURE_EVERY_FRAMES {
            return;
        }
        self.frames_since_measured = 0;
        let Some(lag) = self.loop_delay.estimate() else {
            self.agreeing = 0;
            return;
        };
        let loop_ns = lag as i64 * FRAME_NS;
        let agrees = self
            .previous_estimate_ns
            .is_some_and(|previous| (previous - loop_ns).abs() <= ESTIMATES_AGREE_NS);
        self.agreeing = if agrees { self.agreeing + 1 } else { 1 };
        self.previous_estimate_ns = Some(loop_ns);
        if self.agreeing < CONFIRMATIONS {
            return;
        }
        self.loop_ns = Some(loop_ns);
        let aec3_has_it = self
            .apm
            .statistics()
            .echo_return_loss_enhancement
            .is_some_and(|db| db >= AEC3_HAS_IT_DB);
        if aec3_has_it {
            return;
        }
        let lead = if loop_ns > LOOP_AEC3_COVERS_NS {
            loop_ns - LOOP_LEFT_TO_AEC3_NS
        } else {
            0
        };
        if (lead - self.lead_ns).abs() >= LEAD_STEP_NS {
            self.lead_ns = lead;
        }
    }

    /// The render stream up to `until_ns`, in 10 ms frames.
    fn feed_render(&mut self, until_ns: i64, reference: &EchoReference) {
        let mut cursor = match self.render_cursor_ns {
            Some(c) if until_ns - c <= MAX_RENDER_CATCH_UP_NS => c,
            _ => until_ns - FRAME_NS,
        };
        while cursor + FRAME_NS <= until_ns {
            reference.fill(cursor, &mut self.render);
            self.loop_delay
                .render(cursor.div_euclid(FRAME_NS), loudness(&self.render));
            for (f, &s) in self.render_f32.iter_mut().zip(self.render.iter()) {
                *f = f32::from(s) / 32_768.0;
            }
            let _ = self
                .apm
                .process_render_f32(&[&self.render_f32], &mut [&mut self.render_out]);
            cursor += FRAME_NS;
        }
        self.render_cursor_ns = Some(cursor);
    }
}

/// A frame's loudness (mean absolute sample).
fn loudness(frame: &[i16]) -> f32 {
    frame.iter().map(|&s| f32::from(s).abs()).sum::<f32>() / frame.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voice stand-in: noise in syllables of random length (no period for the loop's
    /// correlation to alias on).
    fn voice(n: usize, rate: u32, seed: &mut u64) -> Vec<i16> {
        let mut next = move || {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *seed >> 33
        };
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let syllable = rate as usize * (60 + (next() % 200) as usize) / 1_000;
            let loud = next() % 3 != 0;
            for _ in 0..syllable {
                let noise = (next() as f64 / f64::from(1u32 << 31)) - 0.5;
                out.push(if loud { (noise * 16_000.0) as i16 } else { 0 });
            }
        }
        out.truncate(n);
        out
    }

    fn energy(samples: &[i16]) -> f64 {
        samples.iter().map(|&s| f64::from(s).powi(2)).sum()
    }

    /// Echo return loss enhancement over the last 4 of 10 s of talk, the microphone hearing the
    /// speaker `delay_ms` later, 6 dB down.
    fn erle_db(delay_ms: usize) -> (f64, i64) {
        erle_db_over(delay_ms, None, 300..500)
    }

    /// The same over the 20 ms chunks `measured`, the canceller remembering `known_loop_ns`.
    fn erle_db_over(
        delay_ms: usize,
        known_loop_ns: Option<i64>,
        measured: std::ops::Range<usize>,
    ) -> (f64, i64) {
        let reference = EchoReference::new(8_000);
        let mut aec = EchoCanceller::new(8_000, 8_000).remembering(known_loop_ns);
        let mut seed = 7;
        let sent = voice(8_000 * 10, 8_000, &mut seed);
        let echo_delay = 8 * delay_ms;
        let (mut before, mut after) = (0.0, 0.0);
        for (k, chunk) in sent.chunks(160).enumerate() {
            let at_ns = k as i64 * 20_000_000;
            reference.push(at_ns, chunk);
            let mut mic: Vec<i16> = (0..160)
                .map(|i| {
                    let j = (k * 160 + i) as i64 - echo_delay as i64;
                    if j < 0 {
                        0
                    } else {
                        sent[j as usize] / 2
                    }
                })
                .collect();
            if measured.contains(&k) {
                before += energy(&mic);
            }
            aec.process(at_ns, &mut mic, &reference);
            if measured.contains(&k) {
                after += energy(&mic);
            }
        }
        (10.0 * (before / after.max(1.0)).log10(), aec.lead_ns())
    }

    #[test]
    fn an_echo_160_ms_behind_the_reference_is_removed() {
        let (erle, lead_ns) = erle_db(160);
        eprintln!("160 ms: echo return loss enhancement {erle:.1} dB");
        assert!(erle > 25.0, "echo return loss enhancement {erle:.1} dB");
        assert_eq!(lead_ns, 0, "AEC3 covers 160 ms itself");
    }

    #[test]
    fn an_echo_700_ms_behind_is_lined_up_first_then_removed() {
        let (erle, lead_ns) = erle_db(700);
        eprintln!("700 ms: echo return loss enhancement {erle:.1} dB, lead {lead_ns} ns");
        assert!(
            (450_000_000..=550_000_000).contains(&lead_ns),
            "lead {lead_ns} ns"
        );
        assert!(erle > 25.0, "echo return loss enhancement {erle:.1} dB");
    }

    #[test]
    fn a_remembered_long_loop_is_cancelled_within_two_seconds() {
        // Seconds 1–2 of talk: fresh, the 700 ms loop is still being measured; remembered from
        // an earlier talk, it is lined up from the first frame.
        let (fresh, _) = erle_db_over(700, None, 50..100);
        let (remembered, lead_ns) = erle_db_over(700, Some(700_000_000), 50..100);
        eprintln!("700 ms, seconds 1–2: fresh {fresh:.1} dB, remembered {remembered:.1} dB");
        assert_eq!(lead_ns, 450_000_000);
        assert!(remembered > 20.0, "remembered: {remembered:.1} dB");
        assert!(
            remembered > fresh + 10.0,
            "fresh {fresh:.1}, remembered {remembered:.1}"
        );
    }

    #[test]
    fn speech_at_the_camera_passes_while_nothing_is_sent() {
        let reference = EchoReference::new(8_000);
        let mut aec = EchoCanceller::new(8_000, 8_000);
        let mut seed = 11;
        let near = voice(8_000 * 4, 8_000, &mut seed);
        let (mut before, mut after) = (0.0, 0.0);
        for (k, chunk) in near.chunks(160).enumerate() {
            let mut mic = chunk.to_vec();
            before += energy(&mic);
            aec.process(k as i64 * 20_000_000, &mut mic, &reference);
            after += energy(&mic);
        }
        let change_db = 10.0 * (after / before).log10();
        // AEC3 takes ~1.5 dB off a near end that is alone (its suppressor's floor); the camera's
        // audio path bypasses it a minute after the last talk.
        assert!(
            change_db.abs() < 2.5,
            "the near end changed by {change_db:.1} dB"
        );
    }

    #[test]
    fn a_chunk_that_is_not_whole_frames_is_left_alone() {
        let reference = EchoReference::new(8_000);
        let mut aec = EchoCanceller::new(16_000, 8_000);
        assert!(!aec.fits(1_024));
        assert!(aec.fits(320));
        let mut chunk = vec![1_000i16; 1_024];
        aec.process(0, &mut chunk, &reference);
        assert!(chunk.iter().all(|&s| s == 1_000));
    }
}
