//! RTP and RTCP wire formats (RFC 3550): what the camera simulator writes, and what the camera
//! client (and the simulator, from backchannel clients) reads.

use lockstep_sync::NtpTime;

/// Writes an RTP packet: version 2, no padding, no extension, no CSRC.
pub fn rtp_packet(
    payload_type: u8,
    marker: bool,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push((u8::from(marker) << 7) | (payload_type & 0x7f));
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Writes an RTCP compound packet: a sender report (no report blocks) and an SDES with the CNAME,
/// as RFC 3550 requires of every compound packet.
pub fn sender_report(
    ssrc: u32,
    ntp: NtpTime,
    rtp_timestamp: u32,
    packet_count: u32,
    octet_count: u32,
    cname: &str,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(28 + 12 + cname.len());
    p.extend_from_slice(&[0x80, 200, 0, 6]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&ntp.as_bits().to_be_bytes());
    p.extend_from_slice(&rtp_timestamp.to_be_bytes());
    p.extend_from_slice(&packet_count.to_be_bytes());
    p.extend_from_slice(&octet_count.to_be_bytes());
    push_sdes_cname(&mut p, ssrc, cname);
    p
}

/// One report block of a receiver report (RFC 3550 §6.4.1): how a source's packets arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Packets lost since the previous report, as a fraction of 256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24 bits, signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// The highest sequence number received, with the wrap count in the upper 16 bits.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in the source's RTP clock units.
    pub jitter: u32,
    /// The middle 32 bits of the last sender report's NTP time (0: none yet).
    pub last_sr: u32,
    /// Since that report arrived, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Writes an RTCP compound packet: a receiver report with `blocks` and an SDES with the CNAME.
pub fn receiver_report(ssrc: u32, blocks: &[ReportBlock], cname: &str) -> Vec<u8> {
    let blocks = &blocks[..blocks.len().min(31)];
    let mut p = Vec::with_capacity(8 + 24 * blocks.len() + 12 + cname.len());
    p.extend_from_slice(&[0x80 | blocks.len() as u8, 201]);
    p.extend_from_slice(&(1 + 6 * blocks.len() as u16).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for b in blocks {
        p.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        p.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        p.extend_from_slice(&b.extended_highest_seq.to_be_bytes());
        p.extend_from_slice(&b.jitter.to_be_bytes());
        p.extend_from_slice(&b.last_sr.to_be_bytes());
        p.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
    push_sdes_cname(&mut p, ssrc, cname);
    p
}

/// Appends an SDES packet with one chunk: the CNAME item, null-terminated and padded to 32 bits.
fn push_sdes_cname(p: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let item_len = 2 + cname.len() + 1;
    let chunk_len = (4 + item_len).div_ceil(4) * 4;
    let words = chunk_len / 4;
    let start = p.len();
    p.extend_from_slice(&[0x81, 202]);
    p.extend_from_slice(&(words as u16).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.push(1);
    p.push(cname.len() as u8);
    p.extend_from_slice(cname);
    p.resize(start + 4 + chunk_len, 0);
}

/// The fields of an RTP header we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Where the payload starts (after CSRCs and extension).
    pub payload_offset: usize,
    /// Where it ends (before padding).
    pub payload_end: usize,
}

/// Parses an RTP header, or says what is wrong.
pub fn parse_rtp(packet: &[u8]) -> Result<RtpHeader, &'static str> {
    if packet.len() < 12 {
        return Err("shorter than an RTP header");
    }
    if packet[0] >> 6 != 2 {
        return Err("not RTP version 2");
    }
    let csrc_count = usize::from(packet[0] & 0x0f);
    let mut offset = 12 + 4 * csrc_count;
    if packet[0] & 0x10 != 0 {
        let ext = packet
            .get(offset + 2..offset + 4)
            .ok_or("truncated header extension")?;
        offset += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        let padding = usize::from(*packet.last().ok_or("empty")?);
        end = end.checked_sub(padding).ok_or("bad padding")?;
    }
    if offset > end {
        return Err("header longer than packet");
    }
    Ok(RtpHeader {
        payload_type: packet[1] & 0x7f,
        marker: packet[1] & 0x80 != 0,
        seq: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        payload_offset: offset,
        payload_end: end,
    })
}

/// A sender report's clock pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReportInfo {
    pub ssrc: u32,
    pub ntp: NtpTime,
    pub rtp_timestamp: u32,
}

/// The first sender report of an RTCP compound packet, if it has one (RFC 3550 §6.4.1). Packets
/// are walked by their length fields; anything malformed ends the walk.
pub fn parse_sender_report(compound: &[u8]) -> Option<SenderReportInfo> {
    let mut rest = compound;
    while rest.len() >= 4 {
        if rest[0] >> 6 != 2 {
            return None;
        }
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        let packet = rest.get(..len)?;
        if packet[1] == 200 && packet.len() >= 28 {
            let word = |at: usize| {
                u32::from_be_bytes([packet[at], packet[at + 1], packet[at + 2], packet[at + 3]])
            };
            let ntp = (u64::from(word(8)) << 32) | u64::from(word(12));
            return Some(SenderReportInfo {
                ssrc: word(4),
                ntp: NtpTime::from_bits(ntp),
                rtp_timestamp: word(16),
            });
        }
        rest = &rest[len..];
    }
    None
}

/// The report blocks of every receiver report in an RTCP compound packet (what a camera reads
/// from its clients). Malformed packets end the walk.
pub fn parse_receiver_reports(compound: &[u8]) -> Vec<ReportBlock> {
    let mut blocks = Vec::new();
    let mut rest = compound;
    while rest.len() >= 4 && rest[0] >> 6 == 2 {
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        let Some(packet) = rest.get(..len) else {
            break;
        };
        if packet[1] == 201 {
            let count = usize::from(packet[0] & 0x1f);
            for block in packet
                .get(8..)
                .unwrap_or_default()
                .chunks_exact(24)
                .take(count)
            {
                let word = |at: usize| {
                    u32::from_be_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]])
                };
                // 24-bit two's complement.
                let lost = ((word(4) << 8) as i32) >> 8;
                blocks.push(ReportBlock {
                    ssrc: word(0),
                    fraction_lost: block[4],
                    cumulative_lost: lost,
                    extended_highest_seq: word(8),
                    jitter: word(12),
                    last_sr: word(16),
                    delay_since_last_sr: word(20),
                });
            }
        }
        rest = &rest[len..];
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_round_trips() {
        let p = rtp_packet(96, true, 65_535, 0xdead_beef, 0x1234_5678, &[1, 2, 3]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(
            (h.payload_type, h.marker, h.seq, h.timestamp, h.ssrc),
            (96, true, 65_535, 0xdead_beef, 0x1234_5678)
        );
        assert_eq!(&p[h.payload_offset..h.payload_end], &[1, 2, 3]);
    }

    #[test]
    fn rejects_short_and_wrong_version_packets() {
        assert!(parse_rtp(&[0x80; 11]).is_err());
        assert!(parse_rtp(&[0x40; 12]).is_err());
        // Extension header claims more than there is.
        let mut p = rtp_packet(0, false, 1, 1, 1, &[]);
        p[0] |= 0x10;
        p.extend_from_slice(&[0, 0, 0, 9]);
        assert!(parse_rtp(&p).is_err());
    }

    #[test]
    fn sender_reports_are_found_in_compound_packets() {
        let sr = sender_report(7, NtpTime::from_parts(1, 2), 3, 4, 5, "cam");
        let info = parse_sender_report(&sr).unwrap();
        assert_eq!((info.ssrc, info.rtp_timestamp), (7, 3));
        assert_eq!(info.ntp, NtpTime::from_parts(1, 2));
        // Behind a receiver report (PT 201, no blocks).
        let mut compound = vec![0x80, 201, 0, 1, 0, 0, 0, 9];
        compound.extend_from_slice(&sr);
        assert_eq!(parse_sender_report(&compound), Some(info));
        // Truncated, or only a receiver report: none.
        assert_eq!(parse_sender_report(&sr[..20]), None);
        assert_eq!(parse_sender_report(&compound[..8]), None);
    }

    #[test]
    fn receiver_reports_round_trip() {
        let block = ReportBlock {
            ssrc: 0xcafe_f00d,
            fraction_lost: 3,
            cumulative_lost: -2,
            extended_highest_seq: 0x0001_0005,
            jitter: 450,
            last_sr: 0x0001_0002,
            delay_since_last_sr: 65_536,
        };
        let rr = receiver_report(9, &[block, ReportBlock::default()], "lockstep");
        assert_eq!(rr.len() % 4, 0);
        assert_eq!(&rr[..4], &[0x82, 201, 0, 13]);
        assert_eq!(parse_receiver_reports(&rr), [block, ReportBlock::default()]);
        // A sender report carries no receiver blocks here; truncation ends the walk.
        assert!(
            parse_receiver_reports(&sender_report(7, NtpTime::from_parts(1, 2), 3, 4, 5, "c"))
                .is_empty()
        );
        assert!(parse_receiver_reports(&rr[..20]).is_empty());
        assert_eq!(parse_sender_report(&rr), None);
    }

    #[test]
    fn sender_report_layout() {
        let sr = sender_report(7, NtpTime::from_parts(1, 2), 3, 4, 5, "cam");
        assert_eq!(sr.len() % 4, 0);
        assert_eq!(&sr[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&sr[8..16], &[0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(&sr[16..20], &3u32.to_be_bytes());
        // The SDES length field counts the words after the header.
        let sdes_words = u16::from_be_bytes([sr[30], sr[31]]) as usize;
        assert_eq!(28 + 4 + sdes_words * 4, sr.len());
        assert_eq!(&sr[36..41], &[1, 3, b'c', b'a', b'm']);
    }
}
