//! Camera and file audio to 16-bit PCM: G.711, 16-bit linear PCM, Opus and AAC-LC behind one
//! decoder, so ingest and `measure` decode the same way.

use lockstep_opus::{OpusDecoder, OpusError};
use symphonia_core::audio::SampleBuffer;
use symphonia_core::codecs::{CodecParameters, Decoder as _, DecoderOptions, CODEC_TYPE_AAC};
use symphonia_core::formats::Packet;

use crate::g711::G711Law;

/// Why audio could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum AudioDecodeError {
    #[error(transparent)]
    Opus(#[from] OpusError),
    #[error("AAC: {0} (AAC-LC only)")]
    Aac(String),
}

/// One audio stream's decoder.
pub enum AudioDecoder {
    G711(G711Law),
    /// 16-bit PCM, big-endian (RTP L16) or little-endian (files).
    Pcm16 {
        big_endian: bool,
    },
    Opus(Box<OpusDecoder>),
    Aac(Box<symphonia_codec_aac::AacDecoder>),
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AudioDecoder::G711(_) => "AudioDecoder::G711",
            AudioDecoder::Pcm16 { .. } => "AudioDecoder::Pcm16",
            AudioDecoder::Opus(_) => "AudioDecoder::Opus",
            AudioDecoder::Aac(_) => "AudioDecoder::Aac",
        })
    }
}

impl AudioDecoder {
    /// Opus decoded at 48 kHz.
    pub fn opus(channels: u8) -> Result<Self, AudioDecodeError> {
        Ok(AudioDecoder::Opus(Box::new(OpusDecoder::new(
            48_000,
            channels.clamp(1, 2),
        )?)))
    }

    /// AAC from its AudioSpecificConfig.
    pub fn aac(config: &[u8], sample_rate: u32) -> Result<Self, AudioDecodeError> {
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_AAC)
            .with_sample_rate(sample_rate)
            .with_extra_data(config.to_vec().into_boxed_slice());
        symphonia_codec_aac::AacDecoder::try_new(&params, &DecoderOptions::default())
            .map(|d| AudioDecoder::Aac(Box::new(d)))
            .map_err(|e| AudioDecodeError::Aac(e.to_string()))
    }

    /// Decodes one packet and appends its first channel. `channels` is the container's count,
    /// used for raw PCM only: Opus and AAC know their own.
    pub fn decode_first_channel(
        &mut self,
        data: &[u8],
        channels: usize,
        out: &mut Vec<i16>,
    ) -> Result<(), AudioDecodeError> {
        let step = channels.max(1);
        match self {
            AudioDecoder::G711(law) => {
                let mut pcm = Vec::with_capacity(data.len());
                law.decode(data, &mut pcm);
                out.extend(pcm.iter().step_by(step));
            }
            AudioDecoder::Pcm16 { big_endian } => {
                let sample = |b: &[u8]| {
                    if *big_endian {
                        i16::from_be_bytes([b[0], b[1]])
                    } else {
                        i16::from_le_bytes([b[0], b[1]])
                    }
                };
                out.extend(data.chunks_exact(2).step_by(step).map(sample));
            }
            AudioDecoder::Opus(decoder) => {
                let pcm = decoder.decode(Some(data))?;
                out.extend(pcm.iter().step_by(decoder.channels()));
            }
            AudioDecoder::Aac(decoder) => {
                let decoded = decoder
                    .decode(&Packet::new_from_slice(0, 0, 0, data))
                    .map_err(|e| AudioDecodeError::Aac(e.to_string()))?;
                // The decoder's own channel count: MP4 sample entries often say 2 for mono.
                let channels = decoded.spec().channels.count().max(1);
                let mut buf = SampleBuffer::<i16>::new(decoded.capacity() as u64, *decoded.spec());
                buf.copy_interleaved_ref(decoded);
                out.extend(buf.samples().iter().step_by(channels));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_formats_keep_the_first_channel() {
        let mut out = Vec::new();
        AudioDecoder::Pcm16 { big_endian: true }
            .decode_first_channel(&[0x01, 0x02, 0x7f, 0xff, 0x00, 0x03], 2, &mut out)
            .unwrap();
        assert_eq!(out, vec![0x0102, 0x0003]);
        out.clear();
        AudioDecoder::Pcm16 { big_endian: false }
            .decode_first_channel(&[0x01, 0x02], 1, &mut out)
            .unwrap();
        assert_eq!(out, vec![0x0201]);
        out.clear();
        AudioDecoder::G711(G711Law::MuLaw)
            .decode_first_channel(&[0xff, 0x00, 0xff], 1, &mut out)
            .unwrap();
        assert_eq!(out[0], 0);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn opus_round_trip_and_bad_aac_config() {
        let mut encoder =
            lockstep_opus::OpusEncoder::new(48_000, 1, lockstep_opus::Application::Audio).unwrap();
        let packet = encoder.encode(&[0i16; 960]).unwrap();
        let mut decoder = AudioDecoder::opus(1).unwrap();
        let mut out = Vec::new();
        decoder.decode_first_channel(&packet, 1, &mut out).unwrap();
        assert_eq!(out.len(), 960);
        assert!(AudioDecoder::aac(&[], 8_000).is_err());
    }
}
