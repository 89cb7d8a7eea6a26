//! Decoded camera audio → Opus packets stamped on the 48 kHz output timeline.
//!
//! The sync core's retimer decides where every chunk belongs (`out_pts`, 48 kHz ticks) and the
//! resample ratio that absorbs clock drift; this encoder does the signal work: a band-limited
//! sinc resampler (rubato, ratio changed on the fly), then Opus in frames of up to 20 ms. Opus
//! is fed at its *coding rate*: the lowest rate Opus takes (8, 12, 16, 24 or 48 kHz) at or
//! above the source's, so a G.711 camera is coded narrowband without first being upsampled six
//! times to hold nothing above 4 kHz — the packets, their RTP clock and what a browser decodes
//! are 48 kHz Opus all the same, and the cost is a fraction (`bench/RESULTS.md`). A real
//! resampler buffers input and has a filter delay, so the encoder tracks where its output
//! stream really is and trims the ratio a little more (a proportional loop on the position
//! error) to stay on the retimer's positions; beyond [`REALIGN_SAMPLES`] it steps instead
//! (silence for a gap, skipped input for an overlap).
//!
//! Frames follow the input. A 20 ms frame can leave only once its last sample is in, and the
//! camera's packets start wherever they start on the output timeline (and, with clock drift,
//! slide along it by 18 ms a minute at 300 ppm): fixed 20 ms frames left up to 20 ms after the
//! packet that completed them came in, and every sink waited that long. So whatever the
//! resampler has put out is coded at once, in the longest frames it fills, down to 10 ms: a
//! packet leaves at most that long after its input. (CELT takes 2.5 and 5 ms frames too, but
//! Chromium's WebRTC receiver played them with gaps: 2 and 5 dropouts inside 76 beeps in a
//! minute, none with 10 ms; `bench/webrtc_pulse.sh`.)

use audioadapter_buffers::direct::SequentialSlice;
use lockstep_opus::{Application, OpusEncoder, OpusError};
use rubato::{
    Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// Output rate: Opus RTP timestamps and browsers.
pub const LIVE_RATE_HZ: u32 = 48_000;
/// One Opus frame: 20 ms at the output rate.
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// The input rates Opus codes at, lowest first.
const OPUS_CODING_RATES_HZ: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// Position errors beyond this (10 ms) are stepped, not resampled away.
pub const REALIGN_SAMPLES: i64 = 480;
/// The shortest frame the output is cut into, in 48 kHz ticks (10 ms).
const SHORTEST_FRAME_TICKS: usize = OPUS_FRAME_SAMPLES / 2;
/// Gaps beyond this (1 s) restart the stream: the packets' timestamps jump.
const RESTART_SAMPLES: i64 = 48_000;
/// Time constant of the position loop: half a second removes a sample of error without a
/// measurable pitch change (at most [`MAX_TRIM`]).
const POSITION_LOOP_SECS: f64 = 0.5;
const MAX_TRIM: f64 = 0.002;
/// How a stream is coded: a narrow source (a camera's 8 or 16 kHz G.711 or AAC, coded below 48 kHz)
/// the cheap way, every camera recorded with audio paying it all the time; a full-band source
/// (a WHIP publisher's or a 48 kHz camera's Opus) as before, its settings measured in sync
/// against the browser.
#[derive(Debug, Clone, Copy)]
struct CodingProfile {
    /// Opus complexity (measured: 5 → 3 took 44 % off the G.711 path's instructions; at 32
    /// kbit/s Opus codes cameras' audio in its CELT mode).
    complexity: u8,
    /// A narrow source is CELT-coded at 32 kbit/s whatever it is asked: asked for CELT alone,
    /// the coder looks ahead 2.5 ms instead of 6.5.
    application: Application,
    sinc_len: usize,
    sinc_interpolation: SincInterpolationType,
    sinc_oversampling: usize,
}

/// Below 48 kHz: 64 sinc taps, their table (256 points per tap) interpolated linearly. Measured
/// on a 3.4 kHz tone at 8 kHz (the telephone band's edge) under a 300 ppm ratio: 108 dB signal to
/// noise, against 136 dB for 128 cubic taps at a quarter of the cost — both far beyond 16-bit
/// audio (96 dB) and G.711 (~38 dB). 32 taps fall to 34 dB there.
const NARROW: CodingProfile = CodingProfile {
    complexity: 3,
    application: Application::RestrictedLowDelay,
    sinc_len: 64,
    sinc_interpolation: SincInterpolationType::Linear,
    sinc_oversampling: 256,
};
const FULL_BAND: CodingProfile = CodingProfile {
    complexity: 5,
    application: Application::Audio,
    sinc_len: 128,
    sinc_interpolation: SincInterpolationType::Cubic,
    sinc_oversampling: 128,
};

/// The resampler's input block: 10 ms at the input rate.
const INPUT_BLOCK_MS: u32 = 10;
/// The ratio may move this far from nominal (the retimer's ±0.5 % plus our trim, with margin).
const MAX_RELATIVE_RATIO: f64 = 1.02;
/// 32 kbit/s mono is transparent for camera microphones.
const OPUS_BITRATE: u32 = 32_000;

/// One encoded frame (10 or 20 ms: [`lockstep_opus::packet_samples_48k`] says how long); `pts`
/// in 48 kHz ticks on the output timeline (the encoder's lookahead is already subtracted, so a
/// decoder's first output sample plays at `pts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    pub pts: i64,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveAudioError {
    #[error("opus: {0}")]
    Opus(#[from] OpusError),
    #[error("resampler: {0}")]
    Resampler(String),
}

struct Stream {
    rate_hz: u32,
    /// Output ticks (48 kHz) per sample at the coding rate: 6 for 8 kHz … 1 for 48 kHz.
    ticks_per_sample: i64,
    resampler: Async<f32>,
    block: usize,
    /// Input waiting for a full block.
    input: Vec<f32>,
    /// Output at the coding rate waiting for a full Opus frame; `output_start` is the position
    /// of its first sample in 48 kHz ticks.
    output: Vec<f32>,
    /// The shortest frame it is cut into, at the coding rate (a whole 20 ms frame when frames
    /// are fixed).
    shortest_frame: usize,
    output_start: i64,
    scratch: Vec<f32>,
    /// The ratio last asked for by the retimer (48 kHz output per input sample).
    ratio: f64,
}

/// Decoded audio of one source in, Opus packets out.
pub struct LiveAudioEncoder {
    /// The Opus encoder's lookahead in 48 kHz ticks.
    lookahead: i64,
    /// Frames follow the input (see the module's notes), or are all 20 ms.
    follow_input: bool,
    /// The encoder and its coding rate, kept across stream restarts at the same rate (a new
    /// encoder would code its first frames differently).
    opus: Option<(u32, OpusEncoder)>,
    stream: Option<Stream>,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for LiveAudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveAudioEncoder")
            .field("lookahead", &self.lookahead)
            .field("rate_hz", &self.stream.as_ref().map(|s| s.rate_hz))
            .finish()
    }
}

impl LiveAudioEncoder {
    /// An encoder whose frames follow the input: a camera's.
    pub fn new() -> Result<Self, LiveAudioError> {
        LiveAudioEncoder::with_frames(true)
    }

    /// An encoder of 20 ms frames only, each exactly one frame after the last: a push source's,
    /// whose packets are scheduled by count.
    pub fn fixed_frames() -> Result<Self, LiveAudioError> {
        LiveAudioEncoder::with_frames(false)
    }

    fn with_frames(follow_input: bool) -> Result<Self, LiveAudioError> {
        // Made at the full-band rate, which a 48 kHz source then keeps.
        let mut opus = opus_encoder(LIVE_RATE_HZ)?;
        let lookahead = i64::from(opus.lookahead()?);
        Ok(LiveAudioEncoder {
            lookahead,
            follow_input,
            opus: Some((LIVE_RATE_HZ, opus)),
            stream: None,
            pcm: Vec::with_capacity(OPUS_FRAME_SAMPLES),
        })
    }

    /// The Opus encoder's lookahead in 48 kHz ticks: a packet's pts is its input's position
    /// minus this.
    pub fn lookahead(&self) -> i64 {
        self.lookahead
    }

    /// Forget the stream (a new camera session): the next chunk starts a new one.
    pub fn reset(&mut self) {
        self.stream = None;
    }

    /// A decoded chunk at `rate_hz` whose first sample belongs at 48 kHz position `out_pts`,
    /// resampled by `ratio` (output per input sample). Finished packets are appended to `out`.
    pub fn push_audio(
        &mut self,
        out_pts: i64,
        rate_hz: u32,
        pcm: &[i16],
        ratio: f64,
        out: &mut Vec<OpusPacket>,
    ) -> Result<(), LiveAudioError> {
        if pcm.is_empty() {
            return Ok(());
        }
        // A new rate, or more than a second off either way: a new stream (timestamps jump).
        let restart = self.stream.as_ref().is_none_or(|s| {
            s.rate_hz != rate_hz || (s.predicted_pts() - out_pts).abs() > RESTART_SAMPLES
        });
        if restart {
            self.finish_stream(out)?;
            let coding_rate_hz = coding_rate_hz(rate_hz);
            if self.opus.as_ref().is_none_or(|(r, _)| *r != coding_rate_hz) {
                let mut opus = opus_encoder(coding_rate_hz)?;
                self.lookahead =
                    i64::from(opus.lookahead()?) * i64::from(LIVE_RATE_HZ / coding_rate_hz);
                self.opus = Some((coding_rate_hz, opus));
            }
            self.stream = Some(Stream::new(
                rate_hz,
                coding_rate_hz,
                ratio,
                out_pts,
                self.follow_input,
            )?);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        stream.ratio = ratio;
        let error = stream.predicted_pts() - out_pts;
        let mut samples = pcm;
        if error < -REALIGN_SAMPLES {
            // A gap: silence up to where the chunk belongs.
            stream.push_silence_output((-error) as usize);
        } else if error > REALIGN_SAMPLES {
            // An overlap: the output is past the chunk's start.
            let skip = ((error as f64 / ratio).round() as usize).min(samples.len());
            samples = &samples[skip..];
        }
        let error = stream.predicted_pts() - out_pts;
        let trim = (-(error as f64) / (f64::from(LIVE_RATE_HZ) * POSITION_LOOP_SECS))
            .clamp(-MAX_TRIM, MAX_TRIM);
        stream.set_ratio(ratio * (1.0 + trim))?;
        stream
            .input
            .extend(samples.iter().map(|&s| f32::from(s) / 32768.0));
        stream.run_resampler()?;
        self.encode_ready(out)
    }

    /// No audio came in time: `samples` (48 kHz) of concealment at `out_pts`. Silence goes
    /// through the resampler so the stream stays continuous.
    pub fn push_silence(
        &mut self,
        out_pts: i64,
        samples: u32,
        out: &mut Vec<OpusPacket>,
    ) -> Result<(), LiveAudioError> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(());
        };
        let ratio = stream.ratio;
        let rate_hz = stream.rate_hz;
        let input = (f64::from(samples) / ratio).round() as usize;
        self.push_audio(out_pts, rate_hz, &vec![0; input], ratio, out)
    }

    /// Encodes what is waiting, in the longest frames it fills.
    fn encode_ready(&mut self, out: &mut Vec<OpusPacket>) -> Result<(), LiveAudioError> {
        let (Some(stream), Some((_, opus))) = (self.stream.as_mut(), self.opus.as_mut()) else {
            return Ok(());
        };
        while stream.output.len() >= stream.shortest_frame {
            // 20 or 10 ms: the longest that the output fills.
            let mut frame = stream.frame_samples();
            while frame > stream.output.len() {
                frame /= 2;
            }
            self.pcm.clear();
            self.pcm.extend(
                stream
                    .output
                    .drain(..frame)
                    .map(|s| (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16),
            );
            let pts = stream.output_start - self.lookahead;
            stream.output_start += frame as i64 * stream.ticks_per_sample;
            out.push(OpusPacket {
                pts,
                data: opus.encode(&self.pcm)?,
            });
        }
        Ok(())
    }

    /// Pads the last partial frame with silence and sends it.
    fn finish_stream(&mut self, out: &mut Vec<OpusPacket>) -> Result<(), LiveAudioError> {
        if let Some(stream) = self.stream.as_mut() {
            let frame = stream.shortest_frame;
            let pad = (frame - stream.output.len() % frame) % frame;
            stream.output.extend(std::iter::repeat_n(0.0, pad));
        }
        self.encode_ready(out)
    }
}

/// How a stream coded at `coding_rate_hz` is resampled and coded.
fn profile(coding_rate_hz: u32) -> CodingProfile {
    if coding_rate_hz < LIVE_RATE_HZ {
        NARROW
    } else {
        FULL_BAND
    }
}

/// A band-limited resampler taking `block` input samples at a time, `ratio` output per input.
fn resampler(
    profile: CodingProfile,
    ratio: f64,
    block: usize,
) -> Result<Async<f32>, LiveAudioError> {
    let params = SincInterpolationParameters {
        sinc_len: profile.sinc_len,
        f_cutoff: 0.95,
        interpolation: profile.sinc_interpolation,
        oversampling_factor: profile.sinc_oversampling,
        window: WindowFunction::BlackmanHarris2,
    };
    Async::<f32>::new_sinc(
        ratio,
        MAX_RELATIVE_RATIO,
        &params,
        block,
        1,
        FixedAsync::Input,
    )
    .map_err(|e| LiveAudioError::Resampler(e.to_string()))
}

/// The lowest rate Opus codes at that keeps all of a `rate_hz` source's bandwidth.
fn coding_rate_hz(rate_hz: u32) -> u32 {
    OPUS_CODING_RATES_HZ
        .into_iter()
        .find(|&r| r >= rate_hz)
        .unwrap_or(LIVE_RATE_HZ)
}

fn opus_encoder(coding_rate_hz: u32) -> Result<OpusEncoder, OpusError> {
    let mut opus = OpusEncoder::new(coding_rate_hz, 1, profile(coding_rate_hz).application)?;
    opus.set_bitrate(OPUS_BITRATE)?;
    opus.set_complexity(profile(coding_rate_hz).complexity)?;
    Ok(opus)
}

impl Stream {
    fn new(
        rate_hz: u32,
        coding_rate_hz: u32,
        ratio: f64,
        out_pts: i64,
        follow_input: bool,
    ) -> Result<Stream, LiveAudioError> {
        let ticks_per_sample = i64::from(LIVE_RATE_HZ / coding_rate_hz);
        let shortest_frame = if follow_input {
            SHORTEST_FRAME_TICKS
        } else {
            OPUS_FRAME_SAMPLES
        } / ticks_per_sample as usize;
        let block = (rate_hz * INPUT_BLOCK_MS / 1000).max(1) as usize;
        let resampler = resampler(
            profile(coding_rate_hz),
            ratio / ticks_per_sample as f64,
            block,
        )?;
        // The filter delay: the first output samples are the filter filling up, so the stream
        // starts that much before the first chunk's position.
        let delay = resampler.output_delay() as i64 * ticks_per_sample;
        Ok(Stream {
            rate_hz,
            ticks_per_sample,
            scratch: vec![0.0; resampler.output_frames_max()],
            resampler,
            block,
            input: Vec::with_capacity(block * 4),
            output: Vec::with_capacity(OPUS_FRAME_SAMPLES * 2),
            shortest_frame,
            output_start: out_pts - delay,
            ratio,
        })
    }

    /// One 20 ms Opus frame at the coding rate.
    fn frame_samples(&self) -> usize {
        OPUS_FRAME_SAMPLES / self.ticks_per_sample as usize
    }

    /// Where a chunk pushed now would come out (48 kHz ticks): after the output written so
    /// far, the input waiting for a block, and the filter delay.
    fn predicted_pts(&self) -> i64 {
        let queued = (self.input.len() as f64 * self.ratio).round() as i64;
        let written = (self.output.len() + self.resampler.output_delay()) as i64;
        self.output_start + written * self.ticks_per_sample + queued
    }

    /// `ratio`: 48 kHz output per input sample, as the retimer gives it.
    fn set_ratio(&mut self, ratio: f64) -> Result<(), LiveAudioError> {
        self.resampler
            .set_resample_ratio(ratio / self.ticks_per_sample as f64, true)
            .map_err(|e| LiveAudioError::Resampler(e.to_string()))
    }

    /// Silence for `ticks` of the output (48 kHz), at the coding rate.
    fn push_silence_output(&mut self, ticks: usize) {
        let samples = ticks / self.ticks_per_sample as usize;
        self.output.extend(std::iter::repeat_n(0.0, samples));
    }

    fn run_resampler(&mut self) -> Result<(), LiveAudioError> {
        let mut consumed = 0;
        while self.input.len() - consumed >= self.block {
            let block = &self.input[consumed..consumed + self.block];
            let input = SequentialSlice::new(block, 1, self.block)
                .map_err(|e| LiveAudioError::Resampler(e.to_string()))?;
            let frames = self.scratch.len();
            let mut output = SequentialSlice::new_mut(&mut self.scratch, 1, frames)
                .map_err(|e| LiveAudioError::Resampler(e.to_string()))?;
            let (used, produced) = self
                .resampler
                .process_into_buffer(&input, &mut output, None)
                .map_err(|e| LiveAudioError::Resampler(e.to_string()))?;
            consumed += used;
            self.output.extend_from_slice(&self.scratch[..produced]);
        }
        self.input.drain(..consumed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_opus::{packet_samples_48k, OpusDecoder};

    /// Each packet starts where the one before ended: no steps.
    fn assert_contiguous(packets: &[OpusPacket]) {
        for pair in packets.windows(2) {
            let length = packet_samples_48k(&pair[0].data).expect("an Opus packet");
            assert_eq!(pair[0].pts + i64::from(length), pair[1].pts, "a step");
        }
    }

    /// The end of the coded stream, on the output timeline (48 kHz ticks).
    fn coded_end(enc: &LiveAudioEncoder, packets: &[OpusPacket]) -> i64 {
        let last = packets.last().expect("packets");
        last.pts + i64::from(packet_samples_48k(&last.data).unwrap()) + enc.lookahead()
    }

    /// How far the coded stream ends before what the resampler could have put out after a
    /// chunk ending at `input_end` (48 kHz ticks): the time a sample waits for its frame.
    fn wait_for_frame(enc: &LiveAudioEncoder, packets: &[OpusPacket], input_end: i64) -> i64 {
        let stream = enc.stream.as_ref().expect("a stream");
        let filter = stream.resampler.output_delay() as i64 * stream.ticks_per_sample;
        input_end - filter - coded_end(enc, packets)
    }

    /// Feeds `secs` of an 8 kHz tone in 20 ms chunks at the positions a retimer would give
    /// (`ratio` exactly 6), returns the packets.
    fn encode_tone(secs: u32, start_pts: i64) -> Vec<OpusPacket> {
        let mut enc = LiveAudioEncoder::new().unwrap();
        let mut out = Vec::new();
        for chunk in 0..secs * 50 {
            let pcm: Vec<i16> = (0..160)
                .map(|i| {
                    let t = f64::from(chunk * 160 + i) / 8000.0;
                    ((t * 1000.0 * std::f64::consts::TAU).sin() * 16000.0) as i16
                })
                .collect();
            let pts = start_pts + i64::from(chunk) * 960;
            enc.push_audio(pts, 8000, &pcm, 6.0, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn the_resampler_is_clean_far_beyond_what_cameras_send() {
        // A sine at the telephone band's edge (3.4 kHz at 8 kHz) through a 300 ppm ratio: 16-bit
        // audio is 96 dB signal to noise and G.711 ~38 dB; the resampler must not be what
        // limits either.
        const TONE_HZ: f64 = 3400.0;
        let ratio = 1.0 + 300e-6;
        let mut r = resampler(NARROW, ratio, 80).unwrap();
        let tone = |t: f64| (t * TONE_HZ * std::f64::consts::TAU).sin() * 0.5;
        let input: Vec<f32> = (0..8000 * 4)
            .map(|i| tone(i as f64 / 8000.0) as f32)
            .collect();
        let mut output = Vec::new();
        let mut scratch = vec![0.0f32; r.output_frames_max()];
        for block in input.chunks_exact(80) {
            let inp = SequentialSlice::new(block, 1, 80).unwrap();
            let frames = scratch.len();
            let mut out = SequentialSlice::new_mut(&mut scratch, 1, frames).unwrap();
            let (_, produced) = r.process_into_buffer(&inp, &mut out, None).unwrap();
            output.extend_from_slice(&scratch[..produced]);
        }
        // The best sine of the output's frequency through the settled part (least squares on
        // its sine and cosine), whatever its phase: what is left is noise and distortion.
        let w = TONE_HZ * std::f64::consts::TAU / (8000.0 * ratio);
        let settled = &output[8000..output.len() - 800];
        let (mut ss, mut cc, mut sc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (n, &y) in settled.iter().enumerate() {
            let (s, c, y) = ((w * n as f64).sin(), (w * n as f64).cos(), f64::from(y));
            (ss, cc, sc, ys, yc) = (ss + s * s, cc + c * c, sc + s * c, ys + y * s, yc + y * c);
        }
        let det = ss * cc - sc * sc;
        let (a, b) = ((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det);
        let (mut signal, mut noise) = (0.0, 0.0);
        for (n, &y) in settled.iter().enumerate() {
            let fit = a * (w * n as f64).sin() + b * (w * n as f64).cos();
            signal += fit * fit;
            noise += (f64::from(y) - fit).powi(2);
        }
        let snr_db = 10.0 * (signal / noise).log10();
        assert!(snr_db > 90.0, "resampler SNR {snr_db:.1} dB");
    }

    #[test]
    fn packets_are_contiguous_frames_at_the_retimer_positions() {
        let packets = encode_tone(5, 96_000);
        assert!(packets.len() >= 240, "{}", packets.len());
        assert_contiguous(&packets);
        // Once aligned with the input, frames are a whole 20 ms but where the position loop
        // moves the boundary by a sample (2 short frames here).
        let short = packets[10..]
            .iter()
            .filter(|p| packet_samples_48k(&p.data) != Some(960))
            .count();
        assert!(short <= 3, "{short} short frames");
        // The stream starts one filter delay before the first chunk, minus the Opus lookahead.
        let first = packets[0].pts;
        assert!((96_000 - 800..96_000).contains(&first), "{first}");
    }

    #[test]
    fn a_frame_leaves_within_10_ms_of_its_input_whatever_the_drift() {
        // 20 ms chunks whose ends slide along the output timeline (+300 ppm): a fixed 20 ms
        // framing would leave up to 20 ms of each chunk waiting for the next one.
        let worst_wait = |mut enc: LiveAudioEncoder| {
            let ratio = 6.0 * (1.0 + 300e-6);
            let mut out = Vec::new();
            let mut pos = 331.0f64; // not on a frame boundary
            let mut worst = 0;
            for chunk in 0..3_000 {
                enc.push_audio(pos.round() as i64, 8000, &[500i16; 160], ratio, &mut out)
                    .unwrap();
                pos += 160.0 * ratio;
                if chunk >= 10 {
                    worst = worst.max(wait_for_frame(&enc, &out, pos.round() as i64));
                }
            }
            assert_contiguous(&out);
            (worst, out)
        };
        let (worst, out) = worst_wait(LiveAudioEncoder::new().unwrap());
        assert!(
            worst <= 480 + 6,
            "a sample waited {worst} ticks for its frame"
        );
        // Short frames only where the drift moves the boundary: a few in a minute.
        let short = out
            .iter()
            .filter(|p| packet_samples_48k(&p.data) != Some(960))
            .count();
        assert!(
            short * 50 < out.len(),
            "{short} short frames of {}",
            out.len()
        );
        let (fixed_worst, _) = worst_wait(LiveAudioEncoder::fixed_frames().unwrap());
        assert!(
            fixed_worst > 720,
            "fixed frames waited only {fixed_worst} ticks"
        );
    }

    #[test]
    fn decoded_tone_lands_where_the_retimer_put_it() {
        // A burst (one loud 20 ms chunk of 1 kHz) at input chunk 50 must decode at position
        // 50 × 960.
        let mut enc = LiveAudioEncoder::new().unwrap();
        let mut out = Vec::new();
        for chunk in 0..100i64 {
            let level = if chunk == 50 { 20_000.0 } else { 0.0 };
            let pcm: Vec<i16> = (0..160)
                .map(|i| (level * (f64::from(i) / 8.0 * std::f64::consts::TAU).sin()) as i16)
                .collect();
            enc.push_audio(chunk * 960, 8000, &pcm, 6.0, &mut out)
                .unwrap();
        }
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        let mut first_loud = None;
        for p in &out {
            let pcm = dec.decode(Some(&p.data)).unwrap();
            if let Some(i) = pcm.iter().position(|s| s.unsigned_abs() > 3000) {
                first_loud.get_or_insert(p.pts + i as i64);
            }
        }
        let at = first_loud.expect("the click decodes");
        assert!(
            (at - 50 * 960).abs() <= 48,
            "click at {at}, expected {}",
            50 * 960
        );
    }

    #[test]
    fn drift_ratio_and_jitter_stay_on_the_retimer_positions() {
        // The retimer asks for +400 ppm and positions that follow it; the packets must follow
        // the positions within a few samples, with no steps, for a minute.
        let mut enc = LiveAudioEncoder::new().unwrap();
        let mut out = Vec::new();
        let ratio = 6.0 * (1.0 + 400e-6);
        let mut pos = 0.0f64;
        for _ in 0..3000 {
            let pcm = vec![100i16; 160];
            enc.push_audio(pos.floor() as i64, 8000, &pcm, ratio, &mut out)
                .unwrap();
            pos += 160.0 * ratio;
        }
        assert_contiguous(&out);
        let queued = pos as i64 - coded_end(&enc, &out);
        assert!(
            (0..=480 + 200).contains(&queued),
            "stream end vs retimer {pos}: {queued}"
        );
    }

    #[test]
    fn gaps_are_filled_and_long_gaps_restart() {
        let mut enc = LiveAudioEncoder::new().unwrap();
        let mut out = Vec::new();
        let pcm = vec![0i16; 160];
        enc.push_audio(0, 8000, &pcm, 6.0, &mut out).unwrap();
        enc.push_audio(960, 8000, &pcm, 6.0, &mut out).unwrap();
        // 100 ms missing: filled with silence, timestamps stay contiguous.
        enc.push_audio(960 * 7, 8000, &pcm, 6.0, &mut out).unwrap();
        enc.push_silence(960 * 8, 960, &mut out).unwrap();
        assert_contiguous(&out);
        let before = out.len();
        // 5 s later: a new stream, its first packet near the new position.
        enc.push_audio(960 * 250, 8000, &pcm, 6.0, &mut out)
            .unwrap();
        enc.push_audio(960 * 251, 8000, &pcm, 6.0, &mut out)
            .unwrap();
        let resumed = out[before..]
            .iter()
            .find(|p| p.pts > 960 * 200)
            .expect("the stream resumes");
        assert!((resumed.pts - 960 * 250).abs() < 960, "{}", resumed.pts);
    }
}
