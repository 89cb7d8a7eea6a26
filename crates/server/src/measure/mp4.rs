//! Progressive MP4 files (camera SD cards, NVR exports, `ffmpeg … out.mp4`): H.264 video, AAC or
//! Opus audio. Presentation times come from the sample tables, composition offsets and edit
//! lists — the edit list is where an AAC encoder's priming delay is undone.

use std::path::Path;

use anyhow::{bail, Context as _};
use lockstep_media::mp4_reader::{Mp4File, Mp4Track, TrackCodec};
use lockstep_media::PatternReader;
use lockstep_opus::OpusDecoder;
use symphonia_core::audio::SampleBuffer;
use symphonia_core::codecs::{CodecParameters, Decoder as _, DecoderOptions, CODEC_TYPE_AAC};
use symphonia_core::formats::Packet;

use super::avc::to_annex_b;
use super::Observations;

/// Decodes one audio track's samples to first-channel f32.
enum AudioDecoder {
    Aac(Box<symphonia_codec_aac::AacDecoder>),
    Opus(Box<OpusDecoder>, usize),
}

impl AudioDecoder {
    fn new(track: &Mp4Track) -> anyhow::Result<(Self, u32)> {
        match &track.codec {
            TrackCodec::Aac {
                config,
                sample_rate,
                ..
            } => {
                let mut params = CodecParameters::new();
                params
                    .for_codec(CODEC_TYPE_AAC)
                    .with_sample_rate(*sample_rate)
                    .with_extra_data(config.clone().into_boxed_slice());
                let decoder =
                    symphonia_codec_aac::AacDecoder::try_new(&params, &DecoderOptions::default())
                        .context("AAC decoder (AAC-LC only)")?;
                Ok((AudioDecoder::Aac(Box::new(decoder)), *sample_rate))
            }
            TrackCodec::Opus { channels, .. } => Ok((
                AudioDecoder::Opus(
                    Box::new(OpusDecoder::new(48_000, (*channels).clamp(1, 2))?),
                    usize::from((*channels).clamp(1, 2)),
                ),
                48_000,
            )),
            other => bail!("audio codec {other:?} is not supported (AAC-LC and Opus are)"),
        }
    }

    fn decode(&mut self, data: &[u8], out: &mut Vec<f32>) -> anyhow::Result<()> {
        match self {
            AudioDecoder::Aac(decoder) => {
                let decoded = decoder
                    .decode(&Packet::new_from_slice(0, 0, 0, data))
                    .context("AAC decode")?;
                // The decoder's own channel count: MP4 sample entries often say 2 for mono.
                let channels = decoded.spec().channels.count().max(1);
                let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, *decoded.spec());
                buf.copy_interleaved_ref(decoded);
                out.extend(buf.samples().iter().step_by(channels));
            }
            AudioDecoder::Opus(decoder, channels) => {
                let pcm = decoder.decode(Some(data))?;
                out.extend(
                    pcm.iter()
                        .step_by(*channels)
                        .map(|&s| f32::from(s) / 32_768.0),
                );
            }
        }
        Ok(())
    }
}

pub fn observe(path: &Path, duration: Option<f64>) -> anyhow::Result<Observations> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    let file = Mp4File::parse(bytes)
        .with_context(|| format!("{} is not a readable MP4", path.display()))?;
    let video = file
        .tracks
        .iter()
        .find(|t| matches!(t.codec, TrackCodec::H264 { .. }))
        .context("no H.264 video track")?;
    let audio = file
        .tracks
        .iter()
        .find(|t| t.handler == "soun")
        .context("no audio track: measure needs the beeps")?;
    let TrackCodec::H264 {
        sps,
        pps,
        length_size,
    } = &video.codec
    else {
        bail!("no H.264 video track");
    };
    let (mut audio_decoder, rate) = AudioDecoder::new(audio)?;
    let mut reader = PatternReader::new(rate)?;
    let mut parameter_sets = Vec::new();
    for nal in sps.iter().chain(pps) {
        parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
        parameter_sets.extend_from_slice(nal);
    }
    reader.observe(&parameter_sets);
    let within = |secs: f64| duration.is_none_or(|d| secs <= d);
    for sample in &video.samples {
        let secs = video.pts_secs(sample);
        if !within(secs) {
            break;
        }
        let annex_b = to_annex_b(file.sample_data(sample), *length_size)?;
        reader.video(secs, &annex_b);
    }
    let mut samples = Vec::new();
    for sample in &audio.samples {
        let secs = audio.pts_secs(sample);
        if !within(secs) {
            break;
        }
        samples.clear();
        audio_decoder.decode(file.sample_data(sample), &mut samples)?;
        reader.audio(secs, &samples);
    }
    Ok(Observations::from_file(reader))
}
