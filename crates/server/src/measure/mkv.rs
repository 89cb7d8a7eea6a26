//! Matroska files (what `ffmpeg -c copy` makes of a camera stream): H.264 or H.265 video;
//! G.711, PCM, Opus or AAC audio. Presentation times are the container's timestamps.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context as _};
use lockstep_media::aac_config::AacConfig;
use lockstep_media::g711::G711Law;
use lockstep_media::mp4_reader::h265_from_configuration_record;
use lockstep_media::{AudioDecoder, Codec, PatternReader};
use matroska_demuxer::{Frame, MatroskaFile, TrackType};

use super::avc::{parse_avcc, to_annex_b};
use super::mp4::video_format;
use super::Observations;

fn audio_decoder(
    codec_id: &str,
    private: Option<&[u8]>,
    bits: u64,
    channels: usize,
) -> anyhow::Result<AudioDecoder> {
    match codec_id {
        "A_MS/ACM" => {
            let tag = private
                .and_then(|p| p.get(0..2))
                .map(|b| u16::from_le_bytes([b[0], b[1]]));
            match tag {
                Some(6) => Ok(AudioDecoder::G711(G711Law::ALaw)),
                Some(7) => Ok(AudioDecoder::G711(G711Law::MuLaw)),
                Some(1) if bits == 16 => Ok(AudioDecoder::Pcm16 { big_endian: false }),
                other => bail!("A_MS/ACM audio with format tag {other:?} is not supported"),
            }
        }
        "A_PCM/INT/LIT" if bits == 16 => Ok(AudioDecoder::Pcm16 { big_endian: false }),
        "A_PCM/INT/BIG" if bits == 16 => Ok(AudioDecoder::Pcm16 { big_endian: true }),
        "A_OPUS" => Ok(AudioDecoder::opus(u8::try_from(channels).unwrap_or(2))?),
        "A_AAC" => {
            let config = private.context("AAC audio without its AudioSpecificConfig")?;
            let config =
                AacConfig::from_audio_specific_config(config).map_err(anyhow::Error::msg)?;
            Ok(AudioDecoder::aac(
                &config.audio_specific_config,
                config.sample_rate_hz,
            )?)
        }
        other => {
            bail!("audio codec {other} is not supported (G.711, 16-bit PCM, Opus and AAC-LC are)")
        }
    }
}

/// A track's codec ID. GStreamer's `matroskamux` writes it with its C string's terminating NUL,
/// which the specification's string type allows as padding.
fn codec_id(track: &matroska_demuxer::TrackEntry) -> &str {
    track.codec_id().trim_end_matches('\0')
}

pub fn observe(path: &Path, duration: Option<f64>) -> anyhow::Result<Observations> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut mkv = MatroskaFile::open(BufReader::new(file))
        .with_context(|| format!("{} is not a readable Matroska file", path.display()))?;
    let ns_per_tick = mkv.info().timestamp_scale().get() as f64;
    let video = mkv
        .tracks()
        .iter()
        .find(|t| t.track_type() == TrackType::Video)
        .context("no video track")?;
    let (codec, parameter_sets, length_size) = match codec_id(video) {
        "V_MPEG4/ISO/AVC" => {
            let avc = parse_avcc(video.codec_private().context("H.264 track without avcC")?)?;
            (Codec::H264, avc.parameter_sets_annex_b, avc.length_size)
        }
        "V_MPEGH/ISO/HEVC" => {
            let record = video
                .codec_private()
                .context("H.265 track without its configuration record")?;
            let track = h265_from_configuration_record(record).map_err(anyhow::Error::msg)?;
            video_format(&track)?
        }
        other => bail!("video codec {other} is not supported (H.264 and H.265 are)"),
    };
    let video_track = video.track_number().get();
    let audio = mkv
        .tracks()
        .iter()
        .find(|t| t.track_type() == TrackType::Audio)
        .context("no audio track: measure needs the beeps")?;
    let audio_track = audio.track_number().get();
    let settings = audio
        .audio()
        .context("audio track without audio settings")?;
    let rate = settings.sampling_frequency().round() as u32;
    let channels = settings.channels().get() as usize;
    let bits = settings.bit_depth().map_or(16, |b| b.get());
    let mut decoder = audio_decoder(codec_id(audio), audio.codec_private(), bits, channels)?;
    // Matroska: a codec's built-in delay (Opus pre-skip) is decoded but not presented.
    let audio_delay_secs = audio.codec_delay().unwrap_or(0) as f64 * 1e-9;

    let mut reader = PatternReader::with_codec(codec, rate)?;
    // The track's parameter sets go in front of the first picture: a decoder starts there.
    let mut parameter_sets = parameter_sets;
    let mut samples = Vec::new();
    let mut frame = Frame::default();
    let limit = duration.map(|d| d * 1e9 / ns_per_tick);
    while mkv.next_frame(&mut frame).context("reading the file")? {
        if limit.is_some_and(|l| frame.timestamp as f64 > l) {
            break;
        }
        let secs = frame.timestamp as f64 * ns_per_tick * 1e-9;
        if frame.track == video_track {
            let mut annex_b = std::mem::take(&mut parameter_sets);
            annex_b.extend_from_slice(&to_annex_b(&frame.data, length_size)?);
            reader.video(secs, &annex_b);
        } else if frame.track == audio_track {
            samples.clear();
            decoder.decode_first_channel(&frame.data, channels, &mut samples)?;
            reader.audio_i16(secs - audio_delay_secs, &samples);
        }
    }
    Observations::from_file(reader)
}
