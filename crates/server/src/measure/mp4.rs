//! Progressive MP4 files (camera SD cards, NVR exports, `ffmpeg … out.mp4`): H.264 or H.265
//! video, AAC, Opus or G.711 audio. Presentation times come from the sample tables, composition
//! offsets and edit lists — the edit list is where an AAC encoder's priming delay is undone.

use std::path::Path;

use anyhow::{bail, Context as _};
use lockstep_media::mp4_reader::{Mp4File, Mp4Track, TrackCodec};
use lockstep_media::{AudioDecoder, Codec, PatternReader};

use super::avc::to_annex_b;
use super::Observations;

/// The decoder for an audio track, and the rate it decodes at.
fn audio_decoder(track: &Mp4Track) -> anyhow::Result<(AudioDecoder, u32)> {
    match &track.codec {
        TrackCodec::Aac {
            config,
            sample_rate,
            ..
        } => Ok((AudioDecoder::aac(config, *sample_rate)?, *sample_rate)),
        TrackCodec::Opus { channels, .. } => Ok((AudioDecoder::opus(*channels)?, 48_000)),
        TrackCodec::G711 {
            law, sample_rate, ..
        } => Ok((AudioDecoder::G711(*law), *sample_rate)),
        other => bail!("audio codec {other:?} is not supported (AAC-LC, Opus and G.711 are)"),
    }
}

/// A video track's codec, its parameter sets as Annex B and its NAL length size.
pub(super) fn video_format(codec: &TrackCodec) -> anyhow::Result<(Codec, Vec<u8>, usize)> {
    let (codec, sets, length_size): (Codec, Vec<&Vec<u8>>, usize) = match codec {
        TrackCodec::H264 {
            sps,
            pps,
            length_size,
        } => (Codec::H264, sps.iter().chain(pps).collect(), *length_size),
        TrackCodec::H265 {
            vps,
            sps,
            pps,
            length_size,
        } => (
            Codec::H265,
            vps.iter().chain(sps).chain(pps).collect(),
            *length_size,
        ),
        _ => bail!("no H.264 or H.265 video track"),
    };
    Ok((codec, lockstep_media::h264::annex_b(&sets), length_size))
}

pub fn observe(path: &Path, duration: Option<f64>) -> anyhow::Result<Observations> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    let file = Mp4File::parse(bytes)
        .with_context(|| format!("{} is not a readable MP4", path.display()))?;
    let video = file
        .tracks
        .iter()
        .find(|t| matches!(t.codec, TrackCodec::H264 { .. } | TrackCodec::H265 { .. }))
        .context("no H.264 or H.265 video track")?;
    let audio = file
        .tracks
        .iter()
        .find(|t| t.handler == "soun")
        .context("no audio track: measure needs the beeps")?;
    let (codec, parameter_sets, length_size) = video_format(&video.codec)?;
    let (mut decoder, rate) = audio_decoder(audio)?;
    let mut reader = PatternReader::with_codec(codec, rate)?;
    // The sample entry's parameter sets go in front of the first picture: a decoder starts there.
    let mut parameter_sets = parameter_sets;
    let within = |secs: f64| duration.is_none_or(|d| secs <= d);
    for sample in &video.samples {
        let secs = video.pts_secs(sample);
        if !within(secs) {
            break;
        }
        let mut annex_b = std::mem::take(&mut parameter_sets);
        annex_b.extend_from_slice(&to_annex_b(file.sample_data(sample), length_size)?);
        reader.video(secs, &annex_b);
    }
    let mut samples = Vec::new();
    for sample in &audio.samples {
        let secs = audio.pts_secs(sample);
        if !within(secs) {
            break;
        }
        samples.clear();
        decoder.decode_first_channel(file.sample_data(sample), 1, &mut samples)?;
        reader.audio_i16(secs, &samples);
    }
    Observations::from_file(reader)
}
