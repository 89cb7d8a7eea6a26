//! The video track's description from a keyframe: its in-band SPS and PPS, and the picture
//! size the SPS declares (players size the track from `avcC`'s sample entry).

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};
use lockstep_media::h264::{nal_type, split_annex_b};

use crate::mp4_boxes::VideoConfig;

const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// `None` when the access unit lacks a parameter set or its SPS does not parse.
pub fn video_config(annex_b: &[u8]) -> Option<VideoConfig> {
    let nals = split_annex_b(annex_b);
    let sps = nals.iter().find(|n| nal_type(n) == NAL_SPS)?;
    let pps = nals.iter().find(|n| nal_type(n) == NAL_PPS)?;
    config_from(sps, pps)
}

/// The description for this SPS and PPS (`None` if the SPS does not parse).
pub fn config_from(sps: &[u8], pps: &[u8]) -> Option<VideoConfig> {
    let rbsp = decode_nal(sps).ok()?;
    let parsed = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    let (width, height) = parsed.pixel_dimensions().ok()?;
    Some(VideoConfig {
        sps: sps.to_vec(),
        pps: pps.to_vec(),
        width: u16::try_from(width).ok()?,
        height: u16::try_from(height).ok()?,
    })
}
