//! Opus encoding and decoding, safely.
//!
//! libopus (as the pure-Rust transpilation `unsafe-libopus`: no cmake, no C) behind an owned,
//! checked interface. This crate is the one place in lockstep allowed `unsafe`: every call checks
//! its arguments first (frame sizes, buffer lengths), so libopus never reads or writes out of
//! bounds, and each encoder/decoder is owned by exactly one value and freed on drop.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ptr::NonNull;

/// Opus RTP always runs at 48 kHz, whatever the input rate.
pub const RTP_CLOCK_HZ: u32 = 48_000;
/// The largest Opus packet (RFC 6716: 1275 bytes per frame, up to 3 frames in a packet of 60 ms
/// is the practical bound; 4000 is libopus's own recommendation).
pub const MAX_PACKET_BYTES: usize = 4_000;

/// What the encoder tunes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Application {
    /// Speech: better intelligibility at low bitrates.
    Voip,
    /// Music and everything else.
    Audio,
    /// CELT only: 2.5 ms of lookahead instead of 6.5, and every frame size from 2.5 ms without
    /// a mode switch. For sources CELT codes anyway (cameras' narrow band at 32 kbit/s).
    RestrictedLowDelay,
}

/// A libopus error, with what we were doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    #[error("unsupported sample rate {0} Hz (8, 12, 16, 24 or 48 kHz)")]
    SampleRate(u32),
    #[error("unsupported channel count {0} (1 or 2)")]
    Channels(u8),
    #[error("{samples} samples per channel is not an Opus frame at {rate} Hz (2.5–60 ms)")]
    FrameSize { samples: usize, rate: u32 },
    #[error("PCM buffer of {len} values does not hold whole frames of {channels} channels")]
    Interleave { len: usize, channels: u8 },
    #[error("libopus: {action} failed with code {code}")]
    Library { action: &'static str, code: i32 },
}

fn check_rate(rate: u32) -> Result<i32, OpusError> {
    match rate {
        8_000 | 12_000 | 16_000 | 24_000 | 48_000 => Ok(rate as i32),
        other => Err(OpusError::SampleRate(other)),
    }
}

fn check_channels(channels: u8) -> Result<i32, OpusError> {
    match channels {
        1 | 2 => Ok(i32::from(channels)),
        other => Err(OpusError::Channels(other)),
    }
}

/// Whether `samples` per channel is a valid Opus frame duration at `rate`.
fn is_frame_size(samples: usize, rate: u32) -> bool {
    // 2.5, 5, 10, 20, 40, 60 ms.
    [1usize, 2, 4, 8, 16, 24]
        .iter()
        .any(|&k| samples * 400 == k * rate as usize)
}

/// How long a packet plays, in 48 kHz samples, read from its table-of-contents byte (RFC 6716
/// §3.1); `None` for what is not a well-formed Opus packet header.
pub fn packet_samples_48k(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame durations in 48 kHz samples: SILK 10/20/40/60 ms, hybrid 10/20, CELT 2.5/5/10/20.
    let frame = match config {
        0..=11 => [480, 960, 1_920, 2_880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    // RFC 6716 §3.2.5: at most 120 ms in a packet.
    Some(frame * frames).filter(|&n| n > 0 && n <= 5_760)
}

/// An Opus encoder.
#[derive(Debug)]
pub struct OpusEncoder {
    state: NonNull<unsafe_libopus::OpusEncoder>,
    rate: u32,
    channels: u8,
    /// Where packets are encoded (the largest a packet can be), then copied out at their size:
    /// one allocation per packet instead of a zeroed 4 kB one that the packet kept.
    scratch: Vec<u8>,
}

// SAFETY: the encoder state is plain memory owned by this value alone; libopus keeps no
// thread-local or global state for it.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    pub fn new(rate: u32, channels: u8, application: Application) -> Result<Self, OpusError> {
        let fs = check_rate(rate)?;
        let ch = check_channels(channels)?;
        let app = match application {
            Application::Voip => unsafe_libopus::OPUS_APPLICATION_VOIP,
            Application::Audio => unsafe_libopus::OPUS_APPLICATION_AUDIO,
            Application::RestrictedLowDelay => unsafe_libopus::OPUS_APPLICATION_RESTRICTED_LOWDELAY,
        };
        let mut error = 0i32;
        // SAFETY: arguments validated above; `error` is a valid place for the result code.
        let state = unsafe { unsafe_libopus::opus_encoder_create(fs, ch, app, &mut error) };
        match NonNull::new(state) {
            Some(state) if error == unsafe_libopus::OPUS_OK => Ok(OpusEncoder {
                state,
                rate,
                channels,
                scratch: vec![0; MAX_PACKET_BYTES],
            }),
            _ => Err(OpusError::Library {
                action: "encoder create",
                code: error,
            }),
        }
    }

    fn ctl(&mut self, action: &'static str, request: i32, value: i32) -> Result<(), OpusError> {
        // SAFETY: a valid encoder owned by `self`; SET requests take one i32 by value.
        let code = unsafe {
            unsafe_libopus::opus_encoder_ctl_impl(
                self.state.as_ptr(),
                request,
                unsafe_libopus::varargs!(value),
            )
        };
        if code == unsafe_libopus::OPUS_OK {
            Ok(())
        } else {
            Err(OpusError::Library { action, code })
        }
    }

    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), OpusError> {
        let bps = i32::try_from(bps).unwrap_or(i32::MAX);
        self.ctl("set bitrate", unsafe_libopus::OPUS_SET_BITRATE_REQUEST, bps)
    }

    /// 0 (fastest) to 10 (best).
    pub fn set_complexity(&mut self, complexity: u8) -> Result<(), OpusError> {
        self.ctl(
            "set complexity",
            unsafe_libopus::OPUS_SET_COMPLEXITY_REQUEST,
            i32::from(complexity.min(10)),
        )
    }

    /// Samples per channel the encoder delays its output by (to compensate in timestamps).
    pub fn lookahead(&mut self) -> Result<u32, OpusError> {
        let mut value = 0i32;
        // SAFETY: a valid encoder; the GET request writes one i32 through the pointer, which
        // outlives the call.
        let code = unsafe {
            unsafe_libopus::opus_encoder_ctl_impl(
                self.state.as_ptr(),
                unsafe_libopus::OPUS_GET_LOOKAHEAD_REQUEST,
                unsafe_libopus::varargs!(&mut value),
            )
        };
        if code == unsafe_libopus::OPUS_OK {
            Ok(value.max(0) as u32)
        } else {
            Err(OpusError::Library {
                action: "get lookahead",
                code,
            })
        }
    }

    /// Encodes one frame of interleaved PCM; returns the packet.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, OpusError> {
        let channels = usize::from(self.channels);
        if pcm.len() % channels != 0 {
            return Err(OpusError::Interleave {
                len: pcm.len(),
                channels: self.channels,
            });
        }
        let samples = pcm.len() / channels;
        if !is_frame_size(samples, self.rate) {
            return Err(OpusError::FrameSize {
                samples,
                rate: self.rate,
            });
        }
        let out = &mut self.scratch;
        // SAFETY: `pcm` holds exactly `samples × channels` values; `out` has MAX_PACKET_BYTES
        // writable bytes and we pass that length.
        let written = unsafe {
            unsafe_libopus::opus_encode(
                self.state.as_ptr(),
                pcm.as_ptr(),
                samples as i32,
                out.as_mut_ptr(),
                MAX_PACKET_BYTES as i32,
            )
        };
        if written < 0 {
            return Err(OpusError::Library {
                action: "encode",
                code: written,
            });
        }
        Ok(out[..written as usize].to_vec())
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, freed exactly once here.
        unsafe { unsafe_libopus::opus_encoder_destroy(self.state.as_ptr()) }
    }
}

/// An Opus decoder.
#[derive(Debug)]
pub struct OpusDecoder {
    state: NonNull<unsafe_libopus::OpusDecoder>,
    rate: u32,
    channels: u8,
    /// Samples per channel in the last packet decoded: what a lost packet is concealed as.
    last_frame_samples: usize,
}

// SAFETY: as for the encoder.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    pub fn new(rate: u32, channels: u8) -> Result<Self, OpusError> {
        let fs = check_rate(rate)?;
        let ch = check_channels(channels)?;
        let mut error = 0i32;
        // SAFETY: arguments validated; `error` is a valid place for the result code.
        let state = unsafe { unsafe_libopus::opus_decoder_create(fs, ch, &mut error) };
        match NonNull::new(state) {
            Some(state) if error == unsafe_libopus::OPUS_OK => Ok(OpusDecoder {
                state,
                rate,
                channels,
                last_frame_samples: rate as usize / 50,
            }),
            _ => Err(OpusError::Library {
                action: "decoder create",
                code: error,
            }),
        }
    }

    pub fn channels(&self) -> usize {
        usize::from(self.channels)
    }

    /// Decodes one packet (or conceals a lost one with `None`) into interleaved PCM. A lost
    /// packet is concealed as long as the last one decoded (libopus conceals as much as it is
    /// given room for: 120 ms, which at 8 kHz also left its state saturated for the next
    /// packets). An empty payload is no Opus packet (RTP padding carries none): nothing.
    pub fn decode(&mut self, packet: Option<&[u8]>) -> Result<Vec<i16>, OpusError> {
        let (data, len, max_samples) = match packet {
            Some([]) => return Ok(Vec::new()),
            Some(p) => (
                p.as_ptr(),
                i32::try_from(p.len()).unwrap_or(i32::MAX),
                // Room for the longest frame: 120 ms.
                self.rate as usize * 120 / 1_000,
            ),
            None => (std::ptr::null(), 0, self.last_frame_samples),
        };
        let mut pcm = vec![0i16; max_samples * usize::from(self.channels)];
        // SAFETY: `data` is null (concealment) or points at `len` readable bytes; `pcm` holds
        // `max_samples × channels` values and we pass `max_samples` as the frame capacity.
        let decoded = unsafe {
            unsafe_libopus::opus_decode(
                self.state.as_ptr(),
                data,
                len,
                pcm.as_mut_ptr(),
                max_samples as i32,
                0,
            )
        };
        if decoded < 0 {
            return Err(OpusError::Library {
                action: "decode",
                code: decoded,
            });
        }
        if packet.is_some() && decoded > 0 {
            self.last_frame_samples = decoded as usize;
        }
        pcm.truncate(decoded as usize * usize::from(self.channels));
        Ok(pcm)
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, freed exactly once here.
        unsafe { unsafe_libopus::opus_decoder_destroy(self.state.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(samples: usize, hz: f64) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                ((2.0 * std::f64::consts::PI * hz * n as f64 / 48_000.0).sin() * 12_000.0) as i16
            })
            .collect()
    }

    #[test]
    fn round_trips_a_tone() {
        let mut enc = OpusEncoder::new(48_000, 1, Application::Audio).unwrap();
        enc.set_bitrate(64_000).unwrap();
        enc.set_complexity(5).unwrap();
        let lookahead = enc.lookahead().unwrap() as usize;
        assert!((100..=400).contains(&lookahead), "{lookahead}");
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        let input = tone(48_000, 1_000.0);
        let mut output = Vec::new();
        for frame in input.chunks(960) {
            let packet = enc.encode(frame).unwrap();
            assert!(!packet.is_empty() && packet.len() < 1_000);
            output.extend(dec.decode(Some(&packet)).unwrap());
        }
        assert_eq!(output.len(), input.len());
        // After the codec delay the waveform matches closely.
        let mut error = 0f64;
        let mut energy = 0f64;
        for n in 4_800..47_000 {
            let e = f64::from(output[n]) - f64::from(input[n - lookahead]);
            error += e * e;
            energy += f64::from(input[n - lookahead]).powi(2);
        }
        let snr_db = 10.0 * (energy / error).log10();
        assert!(snr_db > 15.0, "SNR {snr_db} dB");
    }

    #[test]
    fn packets_say_how_long_they_play_at_any_frame_size() {
        for (rate, app) in [
            (8_000, Application::RestrictedLowDelay),
            (48_000, Application::Audio),
        ] {
            let mut enc = OpusEncoder::new(rate, 1, app).unwrap();
            for ms10 in [25usize, 50, 100, 200, 400, 600] {
                let samples = rate as usize * ms10 / 10_000;
                let packet = enc.encode(&vec![0; samples]).unwrap();
                assert_eq!(
                    packet_samples_48k(&packet),
                    Some((48 * ms10 / 10) as u32),
                    "{rate} Hz, {ms10}/10 ms"
                );
            }
        }
        assert_eq!(packet_samples_48k(&[]), None);
        // Code 3 with no frame count, and with zero frames.
        assert_eq!(packet_samples_48k(&[0x03]), None);
        assert_eq!(packet_samples_48k(&[0x03, 0x00]), None);
        // 48 frames of 20 ms: over the 120 ms a packet may hold.
        assert_eq!(packet_samples_48k(&[0xfb, 0x30]), None);
    }

    #[test]
    fn the_low_delay_coder_looks_ahead_2_5_ms() {
        let mut enc = OpusEncoder::new(8_000, 1, Application::RestrictedLowDelay).unwrap();
        assert_eq!(enc.lookahead().unwrap(), 20);
        let mut enc = OpusEncoder::new(8_000, 1, Application::Audio).unwrap();
        assert_eq!(enc.lookahead().unwrap(), 52);
    }

    #[test]
    fn bad_arguments_are_errors_not_crashes() {
        assert_eq!(
            OpusEncoder::new(44_100, 1, Application::Voip).unwrap_err(),
            OpusError::SampleRate(44_100)
        );
        assert_eq!(
            OpusDecoder::new(48_000, 3).unwrap_err(),
            OpusError::Channels(3)
        );
        let mut enc = OpusEncoder::new(48_000, 2, Application::Voip).unwrap();
        assert!(matches!(
            enc.encode(&[0; 961]),
            Err(OpusError::Interleave { .. })
        ));
        assert!(matches!(
            enc.encode(&[0; 1_000]),
            Err(OpusError::FrameSize { .. })
        ));
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        // Garbage is a decode error or some samples, never a crash.
        let _ = dec.decode(Some(&[0xff, 0xff, 0xff]));
        // A lost packet is concealed.
        assert!(dec.decode(None).is_ok());
    }

    #[test]
    fn a_lost_packet_is_concealed_as_one_packet_and_padding_as_none() {
        // 8 kHz, as the talk path decodes: a lost 20 ms packet is 160 concealed samples, and
        // the speech after it keeps its level (a 120 ms concealment saturated the decoder).
        let mut enc = OpusEncoder::new(48_000, 1, Application::Voip).unwrap();
        let mut dec = OpusDecoder::new(8_000, 1).unwrap();
        let input = tone(48_000, 440.0);
        let mut peak_after = 0u16;
        for (n, frame) in input.chunks(960).enumerate() {
            let packet = enc.encode(frame).unwrap();
            if n == 20 {
                assert_eq!(dec.decode(None).unwrap().len(), 160);
                assert!(dec.decode(Some(&[])).unwrap().is_empty());
                continue;
            }
            let pcm = dec.decode(Some(&packet)).unwrap();
            assert_eq!(pcm.len(), 160);
            if n > 20 {
                peak_after =
                    peak_after.max(pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0));
            }
        }
        assert!(peak_after < 16_000, "{peak_after}: the tone is at 12 000");
    }
}
