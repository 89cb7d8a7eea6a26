//! H.265 bitstream plumbing: NAL unit types, the SDP's parameter sets, and RTP depacketization
//! (RFC 7798: single NAL unit packets, aggregation packets, fragmentation units).
//!
//! Access units come out in Annex B, as H.264's do, so everything after the depacketizer (the
//! sync core, the live feed, the recorder) handles both codecs the same way.

use crate::fmtp;
use crate::h264::{annex_b, AccessUnit};

pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
/// RFC 7798 payload structures sharing the NAL header's type field.
const NAL_AP: u8 = 48;
const NAL_FU: u8 = 49;
const NAL_PACI: u8 = 50;

/// The type of a NAL unit (bits 1..7 of its two-byte header).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| (h >> 1) & 0x3f)
}

/// Intra random access points (BLA, IDR, CRA): a decoder can start here.
pub fn is_keyframe_nal(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// The parameter sets an H.265 track's SDP announces (`sprop-vps`, `sprop-sps`, `sprop-pps`,
/// each a comma-separated base64 list), in decoding order; `Err` names a value that is not
/// base64. Empty if the SDP has none (the camera sends them in-band).
pub fn sdp_parameter_sets(fmtp: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut sets = Vec::new();
    for key in ["sprop-vps", "sprop-sps", "sprop-pps"] {
        sets.extend(fmtp::base64_nal_units(fmtp, key)?);
    }
    Ok(sets)
}

/// `sprop-max-don-diff` > 0 means NAL units carry a decoding order number (DONL) and may come
/// out of order; cameras do not do this, and we refuse it rather than misread every packet.
pub fn check_decoding_order(fmtp: &str) -> Result<(), String> {
    match fmtp::value(fmtp, "sprop-max-don-diff").map(str::parse::<u32>) {
        None | Some(Ok(0)) => Ok(()),
        Some(_) => Err(
            "the H.265 track sends decoding order numbers (sprop-max-don-diff), \
                        which lockstep does not read"
                .into(),
        ),
    }
}

/// Reassembles access units from RTP payloads. Feed payloads in sequence order; a lost packet
/// marks the access unit broken.
#[derive(Debug, Default)]
pub struct H265Depacketizer {
    nals: Vec<Vec<u8>>,
    fragment: Option<Vec<u8>>,
    broken: bool,
}

impl H265Depacketizer {
    /// A sequence gap: what is being assembled is incomplete.
    pub fn handle_loss(&mut self) {
        self.broken = true;
        self.fragment = None;
    }

    /// Takes one RTP payload; returns the access unit when `marker` ends it.
    pub fn push(&mut self, payload: &[u8], marker: bool) -> Option<AccessUnit> {
        if payload.len() < 3 || payload[0] & 0x80 != 0 {
            // Shorter than a header and one byte, or the forbidden bit set.
            self.broken = true;
        } else {
            match nal_type(payload) {
                NAL_AP => self.push_aggregation(&payload[2..]),
                NAL_FU => self.push_fragment(payload),
                // Payload content information: nothing to decode.
                NAL_PACI => {}
                _ => self.nals.push(payload.to_vec()),
            }
        }
        if !marker {
            return None;
        }
        let nals = std::mem::take(&mut self.nals);
        let broken = std::mem::take(&mut self.broken) || self.fragment.take().is_some();
        if nals.is_empty() {
            return None;
        }
        let keyframe = nals.iter().any(|n| is_keyframe_nal(nal_type(n)));
        Some(AccessUnit {
            annex_b: annex_b(&nals),
            keyframe,
            broken,
        })
    }

    /// Aggregation packet: 16-bit size, NAL unit, repeated.
    fn push_aggregation(&mut self, mut rest: &[u8]) {
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            match rest.get(2..2 + len) {
                Some(nal) if len >= 2 => self.nals.push(nal.to_vec()),
                _ => {
                    self.broken = true;
                    return;
                }
            }
            rest = &rest[2 + len..];
        }
        if !rest.is_empty() {
            self.broken = true;
        }
    }

    /// Fragmentation unit: the payload header (type 49), an FU header (S, E, the NAL's type),
    /// then a piece of the NAL's body.
    fn push_fragment(&mut self, payload: &[u8]) {
        let fu = payload[2];
        let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
        let body = &payload[3..];
        if start {
            // The NAL's header is the payload header with the FU's type put back.
            let mut nal = vec![(payload[0] & 0x81) | ((fu & 0x3f) << 1), payload[1]];
            nal.extend_from_slice(body);
            self.fragment = Some(nal);
        } else if let Some(nal) = &mut self.fragment {
            nal.extend_from_slice(body);
        } else {
            // A middle or end piece without its start: lost with the start.
            self.broken = true;
        }
        if end {
            if let Some(nal) = self.fragment.take() {
                self.nals.push(nal);
            }
        }
    }
}

/// A test and bench helper: cuts NAL units into RFC 7798 payloads of at most `max_payload`
/// bytes (single NAL units and fragmentation units, as GStreamer's `rtph265pay` does).
pub fn packetize(nals: &[&[u8]], max_payload: usize, out: &mut Vec<Vec<u8>>) {
    for nal in nals.iter().filter(|n| n.len() >= 2) {
        if nal.len() <= max_payload {
            out.push(nal.to_vec());
            continue;
        }
        let header = [(nal[0] & 0x81) | (NAL_FU << 1), nal[1]];
        let chunk = max_payload.saturating_sub(3).max(1);
        let count = (nal.len() - 2).div_ceil(chunk);
        for (i, piece) in nal[2..].chunks(chunk).enumerate() {
            let mut fu = nal_type(nal);
            if i == 0 {
                fu |= 0x80;
            }
            if i + 1 == count {
                fu |= 0x40;
            }
            let mut payload = Vec::with_capacity(piece.len() + 3);
            payload.extend_from_slice(&header);
            payload.push(fu);
            payload.extend_from_slice(piece);
            out.push(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::split_annex_b;

    const VPS: [u8; 4] = [0x40, 0x01, 0x0c, 0x01];
    const SPS: [u8; 4] = [0x42, 0x01, 0x01, 0x01];

    fn idr(len: usize) -> Vec<u8> {
        // Type 19 (IDR_W_RADL): header 0x26 0x01.
        [0x26, 0x01]
            .into_iter()
            .chain((0..len).map(|i| (i % 251) as u8))
            .collect()
    }

    #[test]
    fn nal_types_come_from_the_two_byte_header() {
        assert_eq!(nal_type(&VPS), NAL_VPS);
        assert_eq!(nal_type(&SPS), NAL_SPS);
        assert_eq!(nal_type(&[0x44, 0x01]), NAL_PPS);
        assert!(is_keyframe_nal(nal_type(&idr(1))));
        assert!(!is_keyframe_nal(nal_type(&[0x02, 0x01]))); // TRAIL_R
    }

    #[test]
    fn fragments_and_single_units_reassemble_into_one_access_unit() {
        let big = idr(5_000);
        let mut payloads = Vec::new();
        packetize(&[&VPS, &SPS, &big], 1_200, &mut payloads);
        assert!(payloads.len() > 4 && payloads.iter().all(|p| p.len() <= 1_200));
        let mut depacketizer = H265Depacketizer::default();
        let count = payloads.len();
        let mut unit = None;
        for (i, p) in payloads.iter().enumerate() {
            unit = depacketizer.push(p, i + 1 == count);
        }
        let whole = unit.take().expect("the marker ends the access unit");
        assert!(whole.keyframe && !whole.broken);
        assert_eq!(
            split_annex_b(&whole.annex_b),
            vec![&VPS[..], &SPS[..], &big[..]]
        );
        // A lost middle fragment: the unit is marked broken, and the next one is whole again.
        for (i, p) in payloads.iter().enumerate() {
            if i == 3 {
                depacketizer.handle_loss();
                continue;
            }
            unit = depacketizer.push(p, i + 1 == count);
        }
        assert!(unit.as_ref().is_some_and(|u| u.broken));
        let units: Vec<_> = payloads
            .iter()
            .enumerate()
            .filter_map(|(i, p)| depacketizer.push(p, i + 1 == count))
            .collect();
        assert!(units.len() == 1 && !units[0].broken);
    }

    #[test]
    fn aggregation_packets_carry_several_units() {
        let mut ap = vec![NAL_AP << 1, 0x01];
        for nal in [&VPS[..], &SPS[..]] {
            ap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            ap.extend_from_slice(nal);
        }
        let mut depacketizer = H265Depacketizer::default();
        assert!(depacketizer.push(&ap, false).is_none());
        let unit = depacketizer.push(&idr(10), true).unwrap();
        assert_eq!(split_annex_b(&unit.annex_b).len(), 3);
        assert!(!unit.broken);
        // A size past the end marks the unit broken, and does not panic.
        let mut short = ap.clone();
        short[3] = 200;
        assert!(depacketizer.push(&short, false).is_none());
        let unit = depacketizer.push(&idr(10), true);
        assert!(unit.is_some_and(|u| u.broken));
    }

    #[test]
    fn garbage_is_broken_not_a_panic() {
        let mut depacketizer = H265Depacketizer::default();
        for junk in [
            &[][..],
            &[0x62][..],
            &[0x62, 0x01][..],
            &[0x62, 0x01, 0x40][..], // an end piece alone
            &[0x80, 0x01, 0x00][..], // forbidden bit
            &[0x60, 0x01, 0x00, 0x05][..],
        ] {
            assert_eq!(depacketizer.push(junk, true), None, "{junk:?}");
        }
    }

    #[test]
    fn the_sdp_parameter_sets_are_read_in_decoding_order() {
        let fmtp = "sprop-pps=RAHA8vA8kA==; sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwBdlZgJ;\
                    sprop-sps=QgEBAWAAAAMAkAAAAwAAAwBdoAKAgC0WWVmkkyuAQAAAAwBAAAAGQg==";
        let sets = sdp_parameter_sets(fmtp).unwrap();
        let types: Vec<u8> = sets.iter().map(|n| nal_type(n)).collect();
        assert_eq!(types, [NAL_VPS, NAL_SPS, NAL_PPS]);
        assert!(sdp_parameter_sets("profile-id=1").unwrap().is_empty());
        let err = sdp_parameter_sets("sprop-sps=@@@").unwrap_err();
        assert!(err.contains("sprop-sps"), "{err}");
        assert!(check_decoding_order("sprop-max-don-diff=0").is_ok());
        assert!(check_decoding_order("sprop-max-don-diff=2").is_err());
    }
}
