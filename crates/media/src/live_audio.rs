//! Decoded camera audio → 48 kHz Opus packets stamped on the output timeline.
//!
//! The sync core's retimer decides where every chunk belongs (`out_pts`, 48 kHz ticks) and the
//! resample ratio that absorbs clock drift; this encoder does the signal work: a band-limited
//! sinc resampler (rubato, ratio changed on the fly) to 48 kHz, then Opus in 20 ms frames. A real
//! resampler buffers input and has a filter delay, so the encoder tracks where its output
//! stream really is and trims the ratio a little more (a proportional loop on the position
//! error) to stay on the retimer's positions; beyond [`REALIGN_SAMPLES`] it steps instead (silence
//! for a gap, skipped input for an overlap).

use audioadapter_buffers::direct::SequentialSlice;
use lockstep_opus::{Application, OpusEncoder, OpusError};
use rubato::{
    Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// Output rate: Opus and browsers.
pub const LIVE_RATE_HZ: u32 = 48_000;
/// One Opus frame: 20 ms.
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// Position errors beyond this (10 ms) are stepped, not resampled away.
pub const REALIGN_SAMPLES: i64 = 480;
/// Gaps beyond this (1 s) restart the stream: the packets' timestamps jump.
const RESTART_SAMPLES: i64 = 48_000;
/// Time constant of the position loop: half a second removes a sample of error without a
/// measurable pitch change (at most [`MAX_TRIM`]).
const POSITION_LOOP_SECS: f64 = 0.5;
const MAX_TRIM: f64 = 0.002;
/// The resampler's input block: 10 ms at the input rate.
const INPUT_BLOCK_MS: u32 = 10;
/// The ratio may move this far from nominal (the retimer's ±0.5 % plus our trim, with margin).
const MAX_RELATIVE_RATIO: f64 = 1.02;
/// 32 kbit/s mono is transparent for camera microphones.
const OPUS_BITRATE: u32 = 32_000;
const OPUS_COMPLEXITY: u8 = 5;

/// One encoded 20 ms frame; `pts` in 48 kHz ticks on the output timeline (the encoder's
/// lookahead is already subtracted, so a decoder's first output sample plays at `pts`).
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
    resampler: Async<f32>,
    block: usize,
    /// Input waiting for a full block.
    input: Vec<f32>,
    /// 48 kHz output waiting for a full Opus frame; `output_start` is the position of its first
    /// sample.
    output: Vec<f32>,
    output_start: i64,
    scratch: Vec<f32>,
    /// The ratio last asked for by the retimer.
    ratio: f64,
}

/// Decoded audio of one source in, Opus packets out.
pub struct LiveAudioEncoder {
    opus: OpusEncoder,
    lookahead: i64,
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
    pub fn new() -> Result<Self, LiveAudioError> {
        let mut opus = OpusEncoder::new(LIVE_RATE_HZ, 1, Application::Audio)?;
        opus.set_bitrate(OPUS_BITRATE)?;
        opus.set_complexity(OPUS_COMPLEXITY)?;
        let lookahead = i64::from(opus.lookahead()?);
        Ok(LiveAudioEncoder {
            opus,
            lookahead,
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
            self.stream = Some(Stream::new(rate_hz, ratio, out_pts)?);
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

    /// Encodes whatever full frames are waiting.
    fn encode_ready(&mut self, out: &mut Vec<OpusPacket>) -> Result<(), LiveAudioError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while stream.output.len() >= OPUS_FRAME_SAMPLES {
            self.pcm.clear();
            self.pcm.extend(
                stream
                    .output
                    .drain(..OPUS_FRAME_SAMPLES)
                    .map(|s| (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16),
            );
            let pts = stream.output_start - self.lookahead;
            stream.output_start += OPUS_FRAME_SAMPLES as i64;
            out.push(OpusPacket {
                pts,
                data: self.opus.encode(&self.pcm)?,
            });
        }
        Ok(())
    }

    /// Pads the last partial frame with silence and sends it.
    fn finish_stream(&mut self, out: &mut Vec<OpusPacket>) -> Result<(), LiveAudioError> {
        if let Some(stream) = self.stream.as_mut() {
            if !stream.output.is_empty() {
                let pad = OPUS_FRAME_SAMPLES - stream.output.len() % OPUS_FRAME_SAMPLES;
                stream.push_silence_output(pad % OPUS_FRAME_SAMPLES);
            }
        }
        self.encode_ready(out)
    }
}

impl Stream {
    fn new(rate_hz: u32, ratio: f64, out_pts: i64) -> Result<Stream, LiveAudioError> {
        let params = SincInterpolationParameters {
            sinc_len: 128,
            f_cutoff: 0.95,
            interpolation: SincInterpolationType::Cubic,
            oversampling_factor: 128,
            window: WindowFunction::BlackmanHarris2,
        };
        let block = (rate_hz * INPUT_BLOCK_MS / 1000).max(1) as usize;
        let resampler = Async::<f32>::new_sinc(
            ratio,
            MAX_RELATIVE_RATIO,
            &params,
            block,
            1,
            FixedAsync::Input,
        )
        .map_err(|e| LiveAudioError::Resampler(e.to_string()))?;
        // The filter delay: the first output samples are the filter filling up, so the stream
        // starts that much before the first chunk's position.
        let delay = resampler.output_delay() as i64;
        Ok(Stream {
            rate_hz,
            scratch: vec![0.0; resampler.output_frames_max()],
            resampler,
            block,
            input: Vec::with_capacity(block * 4),
            output: Vec::with_capacity(OPUS_FRAME_SAMPLES * 2),
            output_start: out_pts - delay,
            ratio,
        })
    }

    /// Where a chunk pushed now would come out: after the output written so far, the input
    /// waiting for a block, and the filter delay.
    fn predicted_pts(&self) -> i64 {
        let queued = (self.input.len() as f64 * self.ratio).round() as i64;
        self.output_start + self.output.len() as i64 + queued + self.resampler.output_delay() as i64
    }

    fn set_ratio(&mut self, ratio: f64) -> Result<(), LiveAudioError> {
        self.resampler
            .set_resample_ratio(ratio, true)
            .map_err(|e| LiveAudioError::Resampler(e.to_string()))
    }

    fn push_silence_output(&mut self, samples: usize) {
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
    use lockstep_opus::OpusDecoder;

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
    fn packets_are_contiguous_20ms_frames_at_the_retimer_positions() {
        let packets = encode_tone(5, 96_000);
        assert!(packets.len() >= 240, "{}", packets.len());
        for pair in packets.windows(2) {
            assert_eq!(pair[1].pts - pair[0].pts, 960);
        }
        // The stream starts one filter delay before the first chunk, minus the Opus lookahead.
        let first = packets[0].pts;
        assert!((96_000 - 800..96_000).contains(&first), "{first}");
    }

    #[test]
    fn decoded_tone_lands_where_the_retimer_put_it() {
        // A click (one loud 20 ms chunk) at input chunk 50 must decode at position 50 × 960.
        let mut enc = LiveAudioEncoder::new().unwrap();
        let mut out = Vec::new();
        for chunk in 0..100i64 {
            let level = if chunk == 50 { 20_000 } else { 0 };
            let pcm: Vec<i16> = (0..160)
                .map(|i| if i % 2 == 0 { level } else { -level })
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
        for pair in out.windows(2) {
            assert_eq!(pair[1].pts - pair[0].pts, 960, "no steps");
        }
        let produced_end = out.last().unwrap().pts + 960 + enc.lookahead;
        let queued = pos as i64 - produced_end;
        assert!(
            (0..=960 + 200).contains(&queued),
            "stream end {produced_end} vs retimer {pos}: {queued}"
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
        for pair in out.windows(2) {
            assert_eq!(pair[1].pts - pair[0].pts, 960);
        }
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
