//! The fields of an H.265 sequence parameter set that a recording's `hvcC` sample entry
//! repeats (profile, tier, level, chroma format, bit depths) and the picture size players size
//! the track from (ITU-T H.265 7.3.2.2, 7.3.3).

use crate::bit_reader::BitReader;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H265Sps {
    pub profile_space: u8,
    pub tier_flag: bool,
    pub profile_idc: u8,
    pub profile_compatibility_flags: [u8; 4],
    pub constraint_indicator_flags: [u8; 6],
    pub level_idc: u8,
    pub max_sub_layers_minus1: u8,
    pub temporal_id_nesting: bool,
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    /// The displayed size (the coded size less the conformance window).
    pub width: u32,
    pub height: u32,
}

impl H265Sps {
    /// Parses an SPS NAL unit (with its two-byte header); `None` if it is not one or is cut
    /// short.
    pub fn parse(nal: &[u8]) -> Option<H265Sps> {
        if crate::h265::nal_type(nal) != crate::h265::NAL_SPS {
            return None;
        }
        let rbsp = without_emulation_prevention(nal.get(2..)?);
        let mut r = BitReader::new(&rbsp);
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.read(3)? as u8;
        let temporal_id_nesting = r.read_flag()?;
        // profile_tier_level(1, max_sub_layers_minus1): the general part, then sub-layers.
        let profile_space = r.read(2)? as u8;
        let tier_flag = r.read_flag()?;
        let profile_idc = r.read(5)? as u8;
        let mut profile_compatibility_flags = [0u8; 4];
        for b in &mut profile_compatibility_flags {
            *b = r.read(8)? as u8;
        }
        let mut constraint_indicator_flags = [0u8; 6];
        for b in &mut constraint_indicator_flags {
            *b = r.read(8)? as u8;
        }
        let level_idc = r.read(8)? as u8;
        let mut present = Vec::with_capacity(usize::from(max_sub_layers_minus1));
        for _ in 0..max_sub_layers_minus1 {
            present.push((r.read_flag()?, r.read_flag()?));
        }
        if max_sub_layers_minus1 > 0 {
            r.skip(2 * (8 - usize::from(max_sub_layers_minus1)))?;
        }
        for (profile, level) in present {
            if profile {
                r.skip(88)?;
            }
            if level {
                r.skip(8)?;
            }
        }
        r.read_ue()?; // sps_seq_parameter_set_id
        let chroma_format_idc = r.read_ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            r.skip(1)?; // separate_colour_plane_flag
        }
        let coded_width = r.read_ue()?;
        let coded_height = r.read_ue()?;
        let (mut crop_x, mut crop_y) = (0u32, 0u32);
        if r.read_flag()? {
            // Offsets count chroma samples: 2 luma columns (and rows for 4:2:0) each.
            let unit_x = if matches!(chroma_format_idc, 1 | 2) {
                2
            } else {
                1
            };
            let unit_y = if chroma_format_idc == 1 { 2 } else { 1 };
            let (left, right) = (r.read_ue()?, r.read_ue()?);
            let (top, bottom) = (r.read_ue()?, r.read_ue()?);
            crop_x = unit_x * left.checked_add(right)?;
            crop_y = unit_y * top.checked_add(bottom)?;
        }
        let bit_depth_luma_minus8 = u8::try_from(r.read_ue()?).ok()?;
        let bit_depth_chroma_minus8 = u8::try_from(r.read_ue()?).ok()?;
        Some(H265Sps {
            profile_space,
            tier_flag,
            profile_idc,
            profile_compatibility_flags,
            constraint_indicator_flags,
            level_idc,
            max_sub_layers_minus1,
            temporal_id_nesting,
            chroma_format_idc: chroma_format_idc as u8,
            bit_depth_luma_minus8,
            bit_depth_chroma_minus8,
            width: coded_width.checked_sub(crop_x)?,
            height: coded_height.checked_sub(crop_y)?,
        })
    }
}

/// The RBSP of a NAL unit's body: every `00 00 03` loses its `03`.
fn without_emulation_prevention(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut zeros = 0;
    for &b in body {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn sps(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    #[test]
    fn a_dahua_camera_sps_reads_as_main_profile_1080p() {
        // From crates/rtsp/testdata/dahua_describe_h265_pcma.txt (a real camera's answer).
        let nal = sps("QgEBAWAAAAMAsAAAAwAAAwBaoAWCAeFja5JFL83BQYFBAAADAAEAAAMADKE=");
        let parsed = H265Sps::parse(&nal).unwrap();
        assert_eq!((parsed.profile_space, parsed.profile_idc), (0, 1), "Main");
        assert!(!parsed.tier_flag);
        assert_eq!(parsed.level_idc, 90, "level 3");
        assert_eq!(parsed.profile_compatibility_flags, [0x60, 0, 0, 0]);
        assert_eq!(parsed.chroma_format_idc, 1, "4:2:0");
        assert_eq!(
            (parsed.bit_depth_luma_minus8, parsed.bit_depth_chroma_minus8),
            (0, 0)
        );
        assert_eq!((parsed.width, parsed.height), (704, 480));
        // GStreamer's h265parse reads the same: main, level 3, 704x480.
    }

    #[test]
    fn a_tp_link_camera_sps_reads_as_level_5_1440p() {
        // From crates/rtsp/testdata/tplink_sdp.txt; h265parse reads main, level 5, 2560x1440.
        let nal = sps("QgEBAWAAAAMAAAMAAAMAAAMAlqABQCAFof4qtO6JLuaAgA27oADN/mAE");
        let parsed = H265Sps::parse(&nal).unwrap();
        assert_eq!((parsed.profile_idc, parsed.level_idc), (1, 150));
        assert_eq!((parsed.width, parsed.height), (2560, 1440));
    }

    #[test]
    fn truncated_or_foreign_units_are_none() {
        let nal = sps("QgEBAWAAAAMAsAAAAwAAAwBaoAWCAeFja5JFL83BQYFBAAADAAEAAAMADKE=");
        for cut in 0..12 {
            assert_eq!(H265Sps::parse(&nal[..cut]), None, "cut at {cut}");
        }
        assert_eq!(H265Sps::parse(&[0x40, 0x01, 0x0c]), None, "a VPS");
    }

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        assert_eq!(
            without_emulation_prevention(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 0]
        );
    }
}
