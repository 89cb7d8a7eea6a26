//! The MPEG-4 audio configs a camera's SDP carries: the AudioSpecificConfig (ISO/IEC 14496-3
//! 1.6.2.1; `config=` of `mpeg4-generic`) and the StreamMuxConfig that wraps it in LATM (1.7.3;
//! `config=` of `MP4A-LATM`). Only what an AAC-LC decoder needs is kept, re-packed as the
//! minimal AudioSpecificConfig (extensions a camera appends, such as an SBR sync extension,
//! are dropped: the decoder is AAC-LC only).

use crate::bit_reader::{BitReader, BitWriter};

const SAMPLE_RATES_HZ: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];
/// The audio object types whose raw data an AAC-LC decoder reads (Main and LTP decode as LC
/// where their tools are off; only LC is claimed).
const OBJECT_TYPE_AAC_LC: u32 = 2;
/// The sync word of an AudioSpecificConfig's SBR extension.
const SYNC_EXTENSION_SBR: u32 = 0x2b7;

/// An AAC-LC stream's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    pub sample_rate_hz: u32,
    pub channels: u8,
    /// Samples per access unit: 1024 (or 960).
    pub frame_samples: u32,
    /// The minimal AudioSpecificConfig for the decoder and an MP4 `esds`.
    pub audio_specific_config: Vec<u8>,
}

impl AacConfig {
    /// From an AudioSpecificConfig's bytes (`mpeg4-generic`'s `config`, an MP4 `esds`).
    pub fn from_audio_specific_config(bytes: &[u8]) -> Result<AacConfig, String> {
        read_audio_specific_config(&mut BitReader::new(bytes))
    }

    /// From a LATM StreamMuxConfig (`MP4A-LATM`'s `config`): one program, one layer, the
    /// frame lengths in the payload (`frameLengthType` 0), as cameras and encoders send it.
    pub fn from_stream_mux_config(bytes: &[u8]) -> Result<AacConfig, String> {
        let mut r = BitReader::new(bytes);
        let short = || "the StreamMuxConfig ends early".to_owned();
        if r.read_flag().ok_or_else(short)? {
            return Err("LATM audioMuxVersion 1 is not supported".into());
        }
        let same_time_framing = r.read_flag().ok_or_else(short)?;
        let _sub_frames = r.read(6).ok_or_else(short)?;
        let programs = r.read(4).ok_or_else(short)? + 1;
        let layers = r.read(3).ok_or_else(short)? + 1;
        if !same_time_framing || programs != 1 || layers != 1 {
            return Err(format!(
                "LATM with {programs} programs and {layers} layers (allStreamsSameTimeFraming \
                 {same_time_framing}) is not supported: one program, one layer"
            ));
        }
        let config = read_audio_specific_config(&mut r)?;
        // What follows may be cut short: GStreamer's rtpmp4apay shifts a 5-byte
        // AudioSpecificConfig (with its sync extension) in and appends no trailer. Missing
        // fields are the defaults every encoder writes (frame lengths in the payload, no other
        // data).
        let frame_length_type = r.read(3).unwrap_or(0);
        if frame_length_type != 0 {
            return Err(format!(
                "LATM frameLengthType {frame_length_type} is not supported (only 0: lengths in \
                 the payload)"
            ));
        }
        let _buffer_fullness = r.read(8);
        if r.read_flag() == Some(true) {
            return Err("LATM with other data (otherDataPresent) is not supported".into());
        }
        Ok(config)
    }
}

fn read_audio_specific_config(r: &mut BitReader<'_>) -> Result<AacConfig, String> {
    let short = || "the AudioSpecificConfig ends early".to_owned();
    let mut object_type = r.read(5).ok_or_else(short)?;
    if object_type == 31 {
        object_type = 32 + r.read(6).ok_or_else(short)?;
    }
    let rate_index = r.read(4).ok_or_else(short)?;
    let sample_rate_hz = if rate_index == 15 {
        r.read(24).ok_or_else(short)?
    } else {
        *SAMPLE_RATES_HZ
            .get(rate_index as usize)
            .ok_or_else(|| format!("AAC sampling frequency index {rate_index} is reserved"))?
    };
    let channel_config = r.read(4).ok_or_else(short)?;
    match object_type {
        OBJECT_TYPE_AAC_LC => {}
        5 | 29 => return Err("HE-AAC (SBR/PS) is not supported: AAC-LC only".into()),
        other => {
            return Err(format!(
                "AAC audio object type {other} is not supported: AAC-LC (2) only"
            ))
        }
    }
    if !(1..=2).contains(&channel_config) {
        return Err(format!(
            "AAC channel configuration {channel_config} is not supported: mono or stereo"
        ));
    }
    if sample_rate_hz == 0 {
        return Err("AAC sample rate 0".into());
    }
    // GASpecificConfig.
    let frame_length_flag = r.read_flag().ok_or_else(short)?;
    let depends_on_core = r.read_flag().ok_or_else(short)?;
    let core_delay = if depends_on_core {
        Some(r.read(14).ok_or_else(short)?)
    } else {
        None
    };
    let extension_flag = r.read_flag().ok_or_else(short)?;
    // Backward-compatible SBR signalling (1.6.5.2): a sync extension may follow. In a
    // StreamMuxConfig nothing says where the AudioSpecificConfig ends, so it is recognised by
    // its sync word, as decoders do.
    let mut peek = r.clone();
    if peek.read(11) == Some(SYNC_EXTENSION_SBR) {
        *r = peek;
        if r.read(5).ok_or_else(short)? == 5 && r.read_flag().ok_or_else(short)? {
            return Err("HE-AAC (SBR) is not supported: AAC-LC only".into());
        }
    }

    let mut w = BitWriter::default();
    w.write(object_type, 5);
    if rate_index == 15 {
        w.write(15, 4);
        w.write(sample_rate_hz, 24);
    } else {
        w.write(rate_index, 4);
    }
    w.write(channel_config, 4);
    w.write(u32::from(frame_length_flag), 1);
    w.write(u32::from(depends_on_core), 1);
    if let Some(delay) = core_delay {
        w.write(delay, 14);
    }
    w.write(u32::from(extension_flag), 1);
    Ok(AacConfig {
        sample_rate_hz,
        channels: channel_config as u8,
        frame_samples: if frame_length_flag { 960 } else { 1024 },
        audio_specific_config: w.into_bytes(),
    })
}

/// `0x12, 0x10` from `"1210"` (an SDP `config`); `None` if it is not hex.
pub fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_configs_read_as_aac_lc() {
        // Reolink (retina's testdata): 16 kHz mono.
        let c = AacConfig::from_audio_specific_config(&hex_bytes("1408").unwrap()).unwrap();
        assert_eq!(
            (c.sample_rate_hz, c.channels, c.frame_samples),
            (16_000, 1, 1024)
        );
        assert_eq!(c.audio_specific_config, vec![0x14, 0x08]);
        // 48 kHz stereo with an SBR sync extension appended: the extension is dropped.
        let c = AacConfig::from_audio_specific_config(&hex_bytes("119056E500").unwrap()).unwrap();
        assert_eq!((c.sample_rate_hz, c.channels), (48_000, 2));
        assert_eq!(c.audio_specific_config, vec![0x11, 0x90]);
    }

    #[test]
    fn latm_config_holds_the_audio_specific_config_at_bit_15() {
        // GStreamer's rtpmp4apay for 44.1 kHz stereo AAC-LC: 40 00 24 20 3f c0.
        let c = AacConfig::from_stream_mux_config(&hex_bytes("400024203fc0").unwrap()).unwrap();
        assert_eq!(
            (c.sample_rate_hz, c.channels, c.frame_samples),
            (44_100, 2, 1024)
        );
        assert_eq!(c.audio_specific_config, vec![0x12, 0x10]);
        // GStreamer's rtpmp4apay for 16 kHz mono: an SBR sync extension saying "no SBR" sits
        // between the AudioSpecificConfig and frameLengthType.
        let c = AacConfig::from_stream_mux_config(&hex_bytes("40002810adca00").unwrap()).unwrap();
        assert_eq!((c.sample_rate_hz, c.channels), (16_000, 1));
        assert_eq!(c.audio_specific_config, vec![0x14, 0x08]);
        // The same with SBR present is refused with the reason.
        let he = AacConfig::from_stream_mux_config(&hex_bytes("40002810adcb00").unwrap());
        assert!(he.unwrap_err().contains("SBR"));
    }

    #[test]
    fn unsupported_configs_say_why() {
        let he = AacConfig::from_audio_specific_config(&[0x2b, 0x92, 0x08, 0x00]).unwrap_err();
        assert!(he.contains("HE-AAC"), "{he}");
        let short = AacConfig::from_audio_specific_config(&[0x14]).unwrap_err();
        assert!(short.contains("ends early"), "{short}");
        let surround = AacConfig::from_audio_specific_config(&[0x11, 0xb0]).unwrap_err();
        assert!(surround.contains("channel configuration 6"), "{surround}");
        assert_eq!(hex_bytes("14x8"), None);
        assert_eq!(hex_bytes("140"), None);
    }
}
