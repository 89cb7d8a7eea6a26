//! AAC access units out of RTP, in the two payload formats cameras use: `mpeg4-generic`
//! (RFC 3640: an AU-header section sized by the SDP's `sizelength`/`indexlength`/
//! `indexdeltalength`, several AUs per packet, or one AU fragmented across packets) and
//! `MP4A-LATM` (RFC 6416 with `cpresent=0`: the StreamMuxConfig in the SDP, AudioMuxElements
//! of length-prefixed AUs, one element possibly spread over packets up to the marker bit).
//! Every length is checked against what arrived: a malformed packet is an error, its audio is
//! lost (and concealed), never a panic.

use crate::aac_config::{hex_bytes, AacConfig};
use crate::bit_reader::BitReader;

/// The largest AU accepted (an AAC-LC frame of two channels is at most 12 288 bits).
const MAX_AU_BYTES: usize = 8192;

/// How one track's packets carry AAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AacPayloadFormat {
    /// RFC 3640 (`mpeg4-generic`).
    Generic(AuHeaderLayout),
    /// RFC 6416 (`MP4A-LATM`), the config out of band.
    Latm,
}

/// The bit lengths of an RFC 3640 AU header (all 0 when there is no AU-header section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuHeaderLayout {
    pub size_length: u32,
    pub index_length: u32,
    pub index_delta_length: u32,
    pub cts_delta_length: u32,
    pub dts_delta_length: u32,
    pub random_access_indication: bool,
    pub stream_state_indication: u32,
    pub auxiliary_data_size_length: u32,
    /// `constantsize`: every AU this long (when `size_length` is 0).
    pub constant_size: Option<u32>,
}

impl AuHeaderLayout {
    /// AAC-hbr (RFC 3640 3.3.6): 13-bit sizes, 3-bit indices. What nearly every camera sends,
    /// and what a camera that sends only `config=` means.
    pub const AAC_HBR: AuHeaderLayout = AuHeaderLayout {
        size_length: 13,
        index_length: 3,
        index_delta_length: 3,
        cts_delta_length: 0,
        dts_delta_length: 0,
        random_access_indication: false,
        stream_state_indication: 0,
        auxiliary_data_size_length: 0,
        constant_size: None,
    };
    /// AAC-lbr (RFC 3640 3.3.5): 6-bit sizes, 2-bit indices.
    pub const AAC_LBR: AuHeaderLayout = AuHeaderLayout {
        size_length: 6,
        index_length: 2,
        index_delta_length: 2,
        ..AuHeaderLayout::AAC_HBR
    };

    fn has_header_section(&self) -> bool {
        self.size_length
            + self.index_length
            + self.index_delta_length
            + self.cts_delta_length
            + self.dts_delta_length
            + self.stream_state_indication
            > 0
            || self.random_access_indication
    }
}

/// An AAC track as its SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacTrackFormat {
    pub payload: AacPayloadFormat,
    pub config: AacConfig,
}

impl AacTrackFormat {
    /// From the rtpmap encoding name (any case) and the `a=fmtp` parameters (`key=value;…`).
    /// `None` if the encoding is not AAC; `Err` says why an AAC track cannot be read.
    pub fn from_sdp(encoding_name: &str, fmtp: &str) -> Option<Result<AacTrackFormat, String>> {
        let params = crate::fmtp::params(fmtp);
        let get = |key: &str| param(&params, key);
        let config_bytes = || {
            let hex = get("config").ok_or("the SDP has no AAC config")?;
            hex_bytes(hex).ok_or_else(|| format!("the AAC config {hex:?} is not hex"))
        };
        if encoding_name.eq_ignore_ascii_case("mpeg4-generic") {
            Some((|| {
                let config = AacConfig::from_audio_specific_config(&config_bytes()?)?;
                let layout = generic_layout(&params)?;
                Ok(AacTrackFormat {
                    payload: AacPayloadFormat::Generic(layout),
                    config,
                })
            })())
        } else if encoding_name.eq_ignore_ascii_case("mp4a-latm") {
            Some((|| {
                if get("cpresent").is_some_and(|v| v.trim() != "0") {
                    return Err("MP4A-LATM with the config in band (cpresent=1) is not \
                                supported: the SDP must carry it"
                        .to_owned());
                }
                let config = AacConfig::from_stream_mux_config(&config_bytes()?)?;
                Ok(AacTrackFormat {
                    payload: AacPayloadFormat::Latm,
                    config,
                })
            })())
        } else {
            None
        }
    }
}

/// A parameter's value; keys are case-insensitive (cameras write `SizeLength`).
fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

fn generic_layout(params: &[(String, String)]) -> Result<AuHeaderLayout, String> {
    let get = |key: &str| param(params, key);
    let number = |key: &str| -> Result<Option<u32>, String> {
        get(key)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 32)
                    .ok_or_else(|| format!("the SDP's {key}={v:?} is not a bit length"))
            })
            .transpose()
    };
    let base = match get("mode").map(str::trim) {
        Some(m) if m.eq_ignore_ascii_case("aac-lbr") => AuHeaderLayout::AAC_LBR,
        Some(m) if m.eq_ignore_ascii_case("aac-hbr") => AuHeaderLayout::AAC_HBR,
        // Generic mode, or no mode: explicit lengths; none at all is what AAC-hbr cameras
        // that send only `config=` mean.
        _ if get("sizelength").is_none() && get("constantsize").is_none() => {
            AuHeaderLayout::AAC_HBR
        }
        _ => AuHeaderLayout {
            size_length: 0,
            index_length: 0,
            index_delta_length: 0,
            ..AuHeaderLayout::AAC_HBR
        },
    };
    let layout = AuHeaderLayout {
        size_length: number("sizelength")?.unwrap_or(base.size_length),
        index_length: number("indexlength")?.unwrap_or(base.index_length),
        index_delta_length: number("indexdeltalength")?.unwrap_or(base.index_delta_length),
        cts_delta_length: number("ctsdeltalength")?.unwrap_or(0),
        dts_delta_length: number("dtsdeltalength")?.unwrap_or(0),
        random_access_indication: get("randomaccessindication").is_some_and(|v| v.trim() == "1"),
        stream_state_indication: number("streamstateindication")?.unwrap_or(0),
        auxiliary_data_size_length: number("auxiliarydatasizelength")?.unwrap_or(0),
        constant_size: get("constantsize").and_then(|v| v.trim().parse().ok()),
    };
    if layout.size_length == 0 && layout.constant_size.is_none() {
        return Err("the SDP gives neither sizelength nor constantsize for AAC".into());
    }
    Ok(layout)
}

/// Why a packet's audio was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AacRtpError {
    #[error("AAC RTP packet: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> AacRtpError {
    AacRtpError::Malformed(what.into())
}

/// One AAC track's depacketizer: packets in sequence order in, access units out.
#[derive(Debug)]
pub struct AacDepacketizer {
    format: AacPayloadFormat,
    /// An AU (generic) or AudioMuxElements (LATM) that continue in the next packet.
    partial: Vec<u8>,
    /// Generic: the fragmented AU's full size.
    partial_size: Option<usize>,
}

impl AacDepacketizer {
    pub fn new(format: AacPayloadFormat) -> Self {
        AacDepacketizer {
            format,
            partial: Vec::new(),
            partial_size: None,
        }
    }

    /// A packet was lost: an AU being reassembled is incomplete.
    pub fn handle_loss(&mut self) {
        self.partial.clear();
        self.partial_size = None;
    }

    /// One packet's payload and marker bit; appends its complete AUs to `aus` (none of a
    /// malformed packet's).
    pub fn push(
        &mut self,
        payload: &[u8],
        marker: bool,
        aus: &mut Vec<Vec<u8>>,
    ) -> Result<(), AacRtpError> {
        let before = aus.len();
        let result = match self.format.clone() {
            AacPayloadFormat::Generic(layout) => self.push_generic(&layout, payload, marker, aus),
            AacPayloadFormat::Latm => self.push_latm(payload, marker, aus),
        };
        if result.is_err() {
            aus.truncate(before);
            self.handle_loss();
        }
        result
    }

    fn push_generic(
        &mut self,
        layout: &AuHeaderLayout,
        payload: &[u8],
        marker: bool,
        aus: &mut Vec<Vec<u8>>,
    ) -> Result<(), AacRtpError> {
        let (sizes, data) = split_generic(layout, payload)?;
        if let Some(size) = self.partial_size {
            // A continuation: one AU header with the whole AU's size (RFC 3640 3.2.3.1).
            if sizes.len() != 1 || sizes[0] != size {
                return Err(malformed(format!(
                    "a fragment of a {size}-byte AU announces {sizes:?}"
                )));
            }
            if self.partial.len() + data.len() > size {
                return Err(malformed(format!(
                    "the fragments of a {size}-byte AU carry {} bytes",
                    self.partial.len() + data.len()
                )));
            }
            self.partial.extend_from_slice(data);
            if self.partial.len() == size {
                aus.push(std::mem::take(&mut self.partial));
                self.partial_size = None;
            } else if marker {
                return Err(malformed(format!(
                    "a {size}-byte AU ended at {} bytes",
                    self.partial.len()
                )));
            }
            return Ok(());
        }
        if let [size] = sizes[..] {
            if size > data.len() {
                if marker {
                    return Err(malformed(format!(
                        "a {size}-byte AU with {} bytes and the marker set",
                        data.len()
                    )));
                }
                self.partial = data.to_vec();
                self.partial_size = Some(size);
                return Ok(());
            }
        }
        let mut at = 0;
        for size in sizes {
            let au = data.get(at..at + size).ok_or_else(|| {
                malformed(format!(
                    "AU headers announce more than the {} bytes of data",
                    data.len()
                ))
            })?;
            aus.push(au.to_vec());
            at += size;
        }
        Ok(())
    }

    fn push_latm(
        &mut self,
        payload: &[u8],
        marker: bool,
        aus: &mut Vec<Vec<u8>>,
    ) -> Result<(), AacRtpError> {
        if self.partial.len() + payload.len() > 4 * MAX_AU_BYTES {
            return Err(malformed("an AudioMuxElement longer than 32 KiB"));
        }
        self.partial.extend_from_slice(payload);
        if !marker {
            return Ok(());
        }
        let elements = std::mem::take(&mut self.partial);
        let mut at = 0;
        while at < elements.len() {
            // PayloadLengthInfo (frameLengthType 0): bytes summed while they are 255.
            let mut len = 0usize;
            loop {
                let byte = *elements
                    .get(at)
                    .ok_or_else(|| malformed("LATM length runs past the packet"))?;
                at += 1;
                len += usize::from(byte);
                if byte != 255 {
                    break;
                }
            }
            if len > MAX_AU_BYTES {
                return Err(malformed(format!("a {len}-byte LATM AU")));
            }
            let au = elements.get(at..at + len).ok_or_else(|| {
                malformed(format!(
                    "a {len}-byte LATM AU with {} bytes left",
                    elements.len() - at
                ))
            })?;
            if len > 0 {
                aus.push(au.to_vec());
            }
            at += len;
        }
        Ok(())
    }
}

/// An RFC 3640 payload's AU sizes and the data after the header and auxiliary sections.
fn split_generic<'a>(
    layout: &AuHeaderLayout,
    payload: &'a [u8],
) -> Result<(Vec<usize>, &'a [u8]), AacRtpError> {
    let mut at = 0usize;
    let mut sizes = Vec::new();
    if layout.has_header_section() {
        let bits = usize::from(u16::from_be_bytes([
            *payload.first().ok_or_else(|| malformed("empty"))?,
            *payload
                .get(1)
                .ok_or_else(|| malformed("no AU-headers-length"))?,
        ]));
        let bytes = bits.div_ceil(8);
        let section = payload
            .get(2..2 + bytes)
            .ok_or_else(|| malformed(format!("{bits} bits of AU headers announced")))?;
        let mut r = BitReader::new(section);
        let short = || malformed("an AU header ends early");
        while r.position() < bits {
            let size = r.read(layout.size_length).ok_or_else(short)?;
            let index_bits = if sizes.is_empty() {
                layout.index_length
            } else {
                layout.index_delta_length
            };
            let index = r.read(index_bits).ok_or_else(short)?;
            if !sizes.is_empty() && index != 0 {
                return Err(malformed(
                    "interleaved AAC (AU-Index-delta > 0) is not supported",
                ));
            }
            for (length, present) in [
                (layout.cts_delta_length, layout.cts_delta_length > 0),
                (layout.dts_delta_length, layout.dts_delta_length > 0),
            ] {
                if present && r.read_flag().ok_or_else(short)? {
                    r.read(length).ok_or_else(short)?;
                }
            }
            if layout.random_access_indication {
                r.read(1).ok_or_else(short)?;
            }
            r.read(layout.stream_state_indication).ok_or_else(short)?;
            if r.position() > bits {
                return Err(short());
            }
            let size = if layout.size_length == 0 {
                layout.constant_size.unwrap_or(0)
            } else {
                size
            } as usize;
            if size == 0 || size > MAX_AU_BYTES {
                return Err(malformed(format!("an AU of {size} bytes")));
            }
            sizes.push(size);
        }
        at = 2 + bytes;
    }
    if layout.auxiliary_data_size_length > 0 {
        let mut r = BitReader::new(&payload[at..]);
        let aux_bits = r
            .read(layout.auxiliary_data_size_length)
            .ok_or_else(|| malformed("no auxiliary-data-size"))? as usize;
        at += (layout.auxiliary_data_size_length as usize + aux_bits).div_ceil(8);
    }
    let data = payload
        .get(at..)
        .ok_or_else(|| malformed("the auxiliary section runs past the packet"))?;
    if sizes.is_empty() {
        // No AU headers: AUs of the constant size, or one fragment of one.
        let size = layout.constant_size.unwrap_or(0) as usize;
        if size == 0 || size > MAX_AU_BYTES {
            return Err(malformed("no AU headers and no constant size"));
        }
        if data.len() < size {
            sizes.push(size);
        } else {
            sizes.extend(std::iter::repeat_n(size, data.len() / size));
        }
    }
    Ok((sizes, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AAC-hbr payload: the AU headers (13-bit size, 3-bit index 0) then the AUs.
    fn hbr(aus: &[&[u8]]) -> Vec<u8> {
        let bits = 16 * aus.len() as u16;
        let mut out = bits.to_be_bytes().to_vec();
        for au in aus {
            out.extend(((au.len() as u16) << 3).to_be_bytes());
        }
        for au in aus {
            out.extend_from_slice(au);
        }
        out
    }

    fn hbr_fragment(total: usize, part: &[u8]) -> Vec<u8> {
        let mut out = 16u16.to_be_bytes().to_vec();
        out.extend(((total as u16) << 3).to_be_bytes());
        out.extend_from_slice(part);
        out
    }

    fn generic() -> AacDepacketizer {
        AacDepacketizer::new(AacPayloadFormat::Generic(AuHeaderLayout::AAC_HBR))
    }

    #[test]
    fn several_aus_in_one_packet() {
        let mut d = generic();
        let mut aus = Vec::new();
        d.push(&hbr(&[&[1, 2, 3], &[4, 5], &[6]]), true, &mut aus)
            .unwrap();
        assert_eq!(aus, vec![vec![1, 2, 3], vec![4, 5], vec![6]]);
    }

    #[test]
    fn a_fragmented_au_is_reassembled_and_a_lost_fragment_drops_it() {
        let au: Vec<u8> = (0..=255).cycle().take(3000).collect();
        let mut d = generic();
        let mut aus = Vec::new();
        d.push(&hbr_fragment(3000, &au[..1400]), false, &mut aus)
            .unwrap();
        d.push(&hbr_fragment(3000, &au[1400..2800]), false, &mut aus)
            .unwrap();
        assert!(aus.is_empty());
        d.push(&hbr_fragment(3000, &au[2800..]), true, &mut aus)
            .unwrap();
        assert_eq!(aus, vec![au.clone()]);

        aus.clear();
        d.push(&hbr_fragment(3000, &au[..1400]), false, &mut aus)
            .unwrap();
        d.handle_loss();
        // The next packet is a new AU: the lost one's remains are not glued to it.
        let err = d.push(&hbr_fragment(3000, &au[2800..]), true, &mut aus);
        assert!(err.is_err(), "a lone last fragment is refused");
        d.push(&hbr(&[&[9, 9]]), true, &mut aus).unwrap();
        assert_eq!(aus, vec![vec![9, 9]]);
    }

    #[test]
    fn lbr_headers_are_one_byte() {
        let mut d = AacDepacketizer::new(AacPayloadFormat::Generic(AuHeaderLayout::AAC_LBR));
        // 2 headers of 8 bits: size 2 and size 1 (6 bits), index 0 (2 bits).
        let payload = [0, 16, 2 << 2, 1 << 2, 7, 7, 8];
        let mut aus = Vec::new();
        d.push(&payload, true, &mut aus).unwrap();
        assert_eq!(aus, vec![vec![7, 7], vec![8]]);
    }

    #[test]
    fn latm_elements_spread_over_packets() {
        let mut d = AacDepacketizer::new(AacPayloadFormat::Latm);
        let long: Vec<u8> = vec![3; 300];
        // 300 = 255 + 45; then a 2-byte AU in the same element stream.
        let mut element = vec![255, 45];
        element.extend_from_slice(&long);
        element.extend_from_slice(&[2, 8, 9]);
        let mut aus = Vec::new();
        d.push(&element[..100], false, &mut aus).unwrap();
        assert!(aus.is_empty());
        d.push(&element[100..], true, &mut aus).unwrap();
        assert_eq!(aus, vec![long, vec![8, 9]]);
    }

    #[test]
    fn malformed_packets_are_errors() {
        let mut aus = Vec::new();
        let mut d = generic();
        assert!(d.push(&[], true, &mut aus).is_err());
        assert!(d.push(&[0, 16, 0], true, &mut aus).is_err(), "header cut");
        // Two headers announcing more data than there is.
        let mut p = hbr(&[&[1, 2], &[3]]);
        p.pop();
        assert!(d.push(&p, true, &mut aus).is_err());
        // A LATM length that runs past the end.
        let mut latm = AacDepacketizer::new(AacPayloadFormat::Latm);
        assert!(latm.push(&[255, 255], true, &mut aus).is_err());
        assert!(latm.push(&[5, 1], true, &mut aus).is_err());
        assert!(aus.is_empty());
    }

    #[test]
    fn sdp_forms_cameras_send() {
        let reolink = "streamtype=5;profile-level-id=15;mode=AAC-hbr;sizelength=13;\
                       indexlength=3;indexdeltalength=3;config=1408; profile=1;";
        let f = AacTrackFormat::from_sdp("MPEG4-GENERIC", reolink)
            .unwrap()
            .unwrap();
        assert_eq!(
            f.payload,
            AacPayloadFormat::Generic(AuHeaderLayout::AAC_HBR)
        );
        assert_eq!(f.config.sample_rate_hz, 16_000);
        // Ubiquiti: capitalised keys, spaces.
        let ubiquiti = "streamtype=5; profile-level-id=15; mode=AAC-hbr; config=1188; \
                        SizeLength=13; IndexLength=3; IndexDeltaLength=3;";
        let f = AacTrackFormat::from_sdp("mpeg4-generic", ubiquiti)
            .unwrap()
            .unwrap();
        assert_eq!(
            f.payload,
            AacPayloadFormat::Generic(AuHeaderLayout::AAC_HBR)
        );
        // Anjvision: only the config.
        let f = AacTrackFormat::from_sdp("MPEG4-GENERIC", "config=1408")
            .unwrap()
            .unwrap();
        assert_eq!(
            f.payload,
            AacPayloadFormat::Generic(AuHeaderLayout::AAC_HBR)
        );
        let latm = "profile-level-id=30;cpresent=0;config=400024203fc0";
        let f = AacTrackFormat::from_sdp("MP4A-LATM", latm)
            .unwrap()
            .unwrap();
        assert_eq!(f.payload, AacPayloadFormat::Latm);
        assert_eq!(f.config.sample_rate_hz, 44_100);
        let err = AacTrackFormat::from_sdp("MP4A-LATM", "cpresent=1")
            .unwrap()
            .unwrap_err();
        assert!(err.contains("cpresent=1"), "{err}");
        let err = AacTrackFormat::from_sdp("mpeg4-generic", "mode=AAC-hbr")
            .unwrap()
            .unwrap_err();
        assert!(err.contains("no AAC config"), "{err}");
        assert!(AacTrackFormat::from_sdp("PCMA", "").is_none());
    }
}
