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
    fn fmtp_names_the_profile_and_carries_the_parameter_sets() {
        let fmtp = sdp_fmtp(&[0x67, 0x42, 0xc0, 0x1e, 0xab], &[0x68, 0xce]);
        assert!(fmtp.contains("profile-level-id=42c01e"));
        assert!(fmtp.contains("sprop-parameter-sets=Z0LAHqs=,aM4="));
    }
}
