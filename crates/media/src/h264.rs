//! H.264 bitstream plumbing: Annex B splitting, parameter sets for SDP, and RTP packetization
//! (RFC 6184: single NAL unit packets, FU-A fragments, packetization-mode 1).

use base64::Engine;

/// NAL unit types we care about.
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
const NAL_FU_A: u8 = 28;

/// The type of a NAL unit (its header's low 5 bits).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| h & 0x1f)
}

/// Splits an Annex B byte stream (start codes `00 00 01` / `00 00 00 01`) into NAL units.
pub fn split_annex_b(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &start) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |next| next - 3);
        // A four-byte start code leaves a zero behind the previous NAL; so can trailing zeros.
        while end > start && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > start {
            nals.push(&stream[start..end]);
        }
    }
    nals
}

/// The SPS and PPS an H.264 track's SDP announces (`sprop-parameter-sets`), SPS first; empty
/// when it has none or they cannot be read (the camera then sends them in band).
pub fn sdp_parameter_sets(fmtp: &str) -> Vec<Vec<u8>> {
    let nals = crate::fmtp::base64_nal_units(fmtp, "sprop-parameter-sets").unwrap_or_default();
    let first = |kind: u8| nals.iter().find(|n| n[0] & 0x1f == kind).cloned();
    match (first(NAL_SPS), first(NAL_PPS)) {
        (Some(sps), Some(pps)) => vec![sps, pps],
        _ => Vec::new(),
    }
}

/// The SDP `fmtp` values for a stream with this SPS and PPS: `profile-level-id` (hex of the
/// SPS's profile, constraints and level bytes) and `sprop-parameter-sets`.
pub fn sdp_fmtp(sps: &[u8], pps: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let profile_level_id = sps
        .get(1..4)
        .map(|b| format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2]))
        .unwrap_or_else(|| "42e01f".to_owned());
    format!(
        "packetization-mode=1;profile-level-id={profile_level_id};sprop-parameter-sets={},{}",
        b64.encode(sps),
        b64.encode(pps)
    )
}

/// Cuts access units into RTP payloads of at most `max_payload` bytes.
#[derive(Debug, Clone, Copy)]
pub struct H264Packetizer {
    pub max_payload: usize,
}

impl Default for H264Packetizer {
    fn default() -> Self {
        // Fits a 1500-byte MTU with IP, UDP, RTP and TCP-interleave headers to spare.
        H264Packetizer { max_payload: 1_200 }
    }
}

impl H264Packetizer {
    /// Appends the RTP payloads of one access unit to `out`; the last one carries the marker.
    pub fn packetize(&self, nals: &[&[u8]], out: &mut Vec<Vec<u8>>) {
        for nal in nals.iter().filter(|n| !n.is_empty()) {
            if nal.len() <= self.max_payload {
                out.push(nal.to_vec());
                continue;
            }
            let header = nal[0];
            let indicator = (header & 0xe0) | NAL_FU_A;
            let body = &nal[1..];
            let chunk = self.max_payload - 2;
            let count = body.len().div_ceil(chunk);
            for (i, piece) in body.chunks(chunk).enumerate() {
                let mut fu_header = header & 0x1f;
                if i == 0 {
                    fu_header |= 0x80;
                }
                if i + 1 == count {
                    fu_header |= 0x40;
                }
                let mut payload = Vec::with_capacity(piece.len() + 2);
                payload.push(indicator);
                payload.push(fu_header);
                payload.extend_from_slice(piece);
                out.push(payload);
            }
        }
    }
}

/// NAL units (without start codes) as one Annex B access unit.
pub fn annex_b<N: AsRef<[u8]>>(nals: &[N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nals.iter().map(|n| n.as_ref().len() + 4).sum());
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal.as_ref());
    }
    out
}

/// Reassembles access units from RTP payloads (single NAL units, STAP-A, FU-A). Feed payloads in
/// sequence order; a lost packet marks the access unit broken.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    nals: Vec<Vec<u8>>,
    fragment: Option<Vec<u8>>,
    broken: bool,
}

/// A complete access unit in Annex B form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub annex_b: Vec<u8>,
    pub keyframe: bool,
    /// Some packet of it was lost or malformed.
    pub broken: bool,
}

impl H264Depacketizer {
    /// A sequence gap: what is being assembled is incomplete.
    pub fn handle_loss(&mut self) {
        self.broken = true;
        self.fragment = None;
    }

    /// Takes one RTP payload; returns the access unit when `marker` ends it.
    pub fn push(&mut self, payload: &[u8], marker: bool) -> Option<AccessUnit> {
        match payload.first().map(|h| h & 0x1f) {
            None | Some(0) | Some(30..) => self.broken = true,
            Some(24) => {
                // STAP-A: 16-bit size, NAL, repeated.
                let mut rest = &payload[1..];
                while rest.len() >= 2 {
                    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    let Some(nal) = rest.get(2..2 + len) else {
                        self.broken = true;
                        break;
                    };
                    self.nals.push(nal.to_vec());
                    rest = &rest[2 + len..];
                }
            }
            Some(NAL_FU_A) => {
                let Some(&fu) = payload.get(1) else {
                    self.broken = true;
                    return None;
                };
                let start = fu & 0x80 != 0;
                let end = fu & 0x40 != 0;
                if start {
                    let mut nal = vec![(payload[0] & 0xe0) | (fu & 0x1f)];
                    nal.extend_from_slice(&payload[2..]);
                    self.fragment = Some(nal);
                } else if let Some(nal) = &mut self.fragment {
                    nal.extend_from_slice(&payload[2..]);
                } else {
                    self.broken = true;
                }
                if end {
                    if let Some(nal) = self.fragment.take() {
                        self.nals.push(nal);
                    }
                }
            }
            Some(_) => self.nals.push(payload.to_vec()),
        }
        if !marker {
            return None;
        }
        let nals = std::mem::take(&mut self.nals);
        let broken = std::mem::take(&mut self.broken) || self.fragment.take().is_some();
        if nals.is_empty() {
            return None;
        }
        let keyframe = nals.iter().any(|n| nal_type(n) == NAL_IDR);
        Some(AccessUnit {
            annex_b: annex_b(&nals),
            keyframe,
            broken,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0,
        ];
        let nals = split_annex_b(&stream);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
        assert_eq!(nal_type(nals[2]), NAL_IDR);
    }

    #[test]
    fn large_nals_become_fu_a_fragments_that_reassemble() {
        let nal: Vec<u8> = std::iter::once(0x65)
            .chain((0..3_000u32).map(|i| i as u8))
            .collect();
        let small = [0x67u8, 0x42, 0xc0, 0x1e];
        let mut out = Vec::new();
        H264Packetizer { max_payload: 1_000 }.packetize(&[&small, &nal], &mut out);
        assert_eq!(out[0], small);
        assert_eq!(out.len(), 1 + 3_000usize.div_ceil(998));
        assert!(out.iter().all(|p| p.len() <= 1_000));
        let mut rebuilt = vec![(out[1][0] & 0xe0) | (out[1][1] & 0x1f)];
        for p in &out[1..] {
            assert_eq!(p[0] & 0x1f, NAL_FU_A);
            rebuilt.extend_from_slice(&p[2..]);
        }
        assert_eq!(rebuilt, nal);
        assert_eq!(out[1][1] & 0xc0, 0x80);
        assert_eq!(out.last().map(|p| p[1] & 0xc0), Some(0x40));
    }

    #[test]
    fn depacketizer_reassembles_what_the_packetizer_cut() {
        let sps = vec![0x67u8, 0x42, 0xc0, 0x1e];
        let idr: Vec<u8> = std::iter::once(0x65)
            .chain((0..5_000u32).map(|i| (i % 251) as u8))
            .collect();
        let mut payloads = Vec::new();
        H264Packetizer { max_payload: 1_200 }.packetize(&[&sps, &idr], &mut payloads);
        let mut depacketizer = H264Depacketizer::default();
        let count = payloads.len();
        let mut unit = None;
        for (i, p) in payloads.iter().enumerate() {
            unit = depacketizer.push(p, i + 1 == count);
        }
        let whole = unit.take().expect("the marker ends the access unit");
        assert!(whole.keyframe && !whole.broken);
        assert_eq!(split_annex_b(&whole.annex_b), vec![&sps[..], &idr[..]]);
        // Lose a middle fragment: the unit comes out marked broken.
        for (i, p) in payloads.iter().enumerate() {
            if i == 2 {
                depacketizer.handle_loss();
                continue;
            }
            unit = depacketizer.push(p, i + 1 == count);
        }
        assert!(unit.is_some_and(|u| u.broken));
        // Garbage does not panic.
        assert_eq!(depacketizer.push(&[], true), None);
        assert_eq!(depacketizer.push(&[28], true), None);
        assert_eq!(depacketizer.push(&[24, 0, 9, 1], true), None);
    }

    #[test]
    fn fmtp_names_the_profile_and_carries_the_parameter_sets() {
        let fmtp = sdp_fmtp(&[0x67, 0x42, 0xc0, 0x1e, 0xab], &[0x68, 0xce]);
        assert!(fmtp.contains("profile-level-id=42c01e"));
        assert!(fmtp.contains("sprop-parameter-sets=Z0LAHqs=,aM4="));
        // Read back, whatever order the camera lists them in; unreadable ones are none.
        let sets = vec![vec![0x67, 0x42, 0xc0, 0x1e, 0xab], vec![0x68, 0xce]];
        assert_eq!(sdp_parameter_sets(&fmtp), sets);
        assert_eq!(
            sdp_parameter_sets("sprop-parameter-sets=aM4=,Z0LAHqs="),
            sets
        );
        assert!(sdp_parameter_sets("sprop-parameter-sets=aM4=").is_empty());
        assert!(sdp_parameter_sets("sprop-parameter-sets=%%").is_empty());
    }
}
