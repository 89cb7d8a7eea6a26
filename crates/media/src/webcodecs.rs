//! The codec strings a browser's WebCodecs decoder is configured with, read from the sequence
//! parameter set a keyframe carries: `avc1.PPCCLL` (RFC 6381 3.3) and
//! `hvc1.<space><profile>.<compat>.<tier><level>.<constraints>` (ISO/IEC 14496-15 E.3).

use crate::h265_sps::H265Sps;
use crate::{h264, h265, Codec};

/// The WebCodecs `codec` string of a keyframe's access unit (Annex B, parameter sets in band);
/// `None` when it carries no SPS that can be read.
pub fn codec_string(codec: Codec, access_unit: &[u8]) -> Option<String> {
    let nals = h264::split_annex_b(access_unit);
    match codec {
        Codec::H264 => nals
            .iter()
            .find(|nal| h264::nal_type(nal) == h264::NAL_SPS)
            .and_then(|sps| avc_codec_string(sps)),
        Codec::H265 => nals
            .iter()
            .find(|nal| h265::nal_type(nal) == h265::NAL_SPS)
            .and_then(|sps| H265Sps::parse(sps))
            .map(|sps| hevc_codec_string(&sps)),
        _ => None,
    }
}

/// `avc1.` and the SPS's profile_idc, constraint flags and level_idc in hex.
fn avc_codec_string(sps: &[u8]) -> Option<String> {
    let [_, profile, constraints, level, ..] = sps else {
        return None;
    };
    Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
}

fn hevc_codec_string(sps: &H265Sps) -> String {
    let space = match sps.profile_space {
        0 => "",
        1 => "A",
        2 => "B",
        _ => "C",
    };
    // The 32 compatibility flags in reverse bit order, in hex without leading zeros.
    let compat = u32::from_be_bytes(sps.profile_compatibility_flags).reverse_bits();
    let tier = if sps.tier_flag { 'H' } else { 'L' };
    let mut out = format!(
        "hvc1.{space}{}.{compat:X}.{tier}{}",
        sps.profile_idc, sps.level_idc
    );
    // The six constraint bytes, trailing zero bytes left out.
    let used = sps
        .constraint_indicator_flags
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    for byte in &sps.constraint_indicator_flags[..used] {
        out.push_str(&format!(".{byte:X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_strings_read_the_sps_header() {
        // Constrained baseline 3.1 (what OpenH264 writes) and high 4.0 (a camera's main stream).
        let au = [
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xaa, 0, 0, 0, 1, 0x68, 0xce,
        ];
        assert_eq!(codec_string(Codec::H264, &au).unwrap(), "avc1.42c01f");
        let au = [0, 0, 1, 0x67, 0x64, 0x00, 0x28, 0xac];
        assert_eq!(codec_string(Codec::H264, &au).unwrap(), "avc1.640028");
        // A delta frame has no SPS: nothing to configure a decoder with.
        assert_eq!(codec_string(Codec::H264, &[0, 0, 0, 1, 0x41, 0x9a]), None);
        assert_eq!(codec_string(Codec::H264, &[0, 0, 0, 1, 0x67, 0x42]), None);
    }

    #[test]
    fn h265_strings_follow_iso_14496_15_annex_e() {
        let main = H265Sps {
            profile_space: 0,
            tier_flag: false,
            profile_idc: 1,
            // general_profile_compatibility_flag[1] and [2]: bits 1 and 2 from the top.
            profile_compatibility_flags: [0x60, 0, 0, 0],
            constraint_indicator_flags: [0xb0, 0, 0, 0, 0, 0],
            level_idc: 93,
            max_sub_layers_minus1: 0,
            temporal_id_nesting: true,
            chroma_format_idc: 1,
            bit_depth_luma_minus8: 0,
            bit_depth_chroma_minus8: 0,
            width: 1280,
            height: 720,
        };
        assert_eq!(hevc_codec_string(&main), "hvc1.1.6.L93.B0");
        let main10_high = H265Sps {
            tier_flag: true,
            profile_idc: 2,
            profile_compatibility_flags: [0x20, 0, 0, 0],
            constraint_indicator_flags: [0, 0, 0, 0, 0, 0],
            level_idc: 120,
            ..main
        };
        assert_eq!(hevc_codec_string(&main10_high), "hvc1.2.4.H120");
    }
}
