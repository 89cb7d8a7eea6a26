//! The video track's description from a keyframe: its in-band parameter sets (H.264 SPS and
//! PPS; H.265 VPS, SPS and PPS), and the picture size the SPS declares (players size the track
//! from the sample entry).

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};
use lockstep_media::h265_sps::H265Sps;
use lockstep_media::{h264, h265, Codec};

use crate::mp4_boxes::{ParameterSets, VideoConfig};

/// `None` when the access unit lacks a parameter set or its SPS does not parse.
pub fn video_config(codec: Codec, annex_b: &[u8]) -> Option<VideoConfig> {
    let nals = h264::split_annex_b(annex_b);
    if codec == Codec::H265 {
        let find = |t| nals.iter().find(|n| h265::nal_type(n) == t);
        let (vps, sps, pps) = (
            find(h265::NAL_VPS)?,
            find(h265::NAL_SPS)?,
            find(h265::NAL_PPS)?,
        );
        return h265_config_from(vps, sps, pps);
    }
    let find = |t| nals.iter().find(|n| h264::nal_type(n) == t);
    config_from(find(h264::NAL_SPS)?, find(h264::NAL_PPS)?)
}

/// The description for this H.264 SPS and PPS (`None` if the SPS does not parse).
pub fn config_from(sps: &[u8], pps: &[u8]) -> Option<VideoConfig> {
    let rbsp = decode_nal(sps).ok()?;
    let parsed = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    let (width, height) = parsed.pixel_dimensions().ok()?;
    Some(VideoConfig {
        parameter_sets: ParameterSets::H264 {
            sps: sps.to_vec(),
            pps: pps.to_vec(),
        },
        width: u16::try_from(width).ok()?,
        height: u16::try_from(height).ok()?,
    })
}

/// The description for this H.265 VPS, SPS and PPS (`None` if the SPS does not parse).
pub fn h265_config_from(vps: &[u8], sps: &[u8], pps: &[u8]) -> Option<VideoConfig> {
    let fields = H265Sps::parse(sps)?;
    Some(VideoConfig {
        width: u16::try_from(fields.width).ok()?,
        height: u16::try_from(fields.height).ok()?,
        parameter_sets: ParameterSets::H265 {
            vps: vps.to_vec(),
            sps: sps.to_vec(),
            pps: pps.to_vec(),
            fields,
        },
    })
}
