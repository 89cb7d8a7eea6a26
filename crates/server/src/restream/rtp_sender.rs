//! One restreamed track for one client: the feed's frames cut into RTP packets stamped on the
//! source's output timeline, and the RTCP sender reports that tie those stamps to wallclock.
//!
//! Every client of a camera gets the same RTP timestamps for the same frame (the frame's `pts`
//! plus an offset fixed for the server's run) and the same mapping to wallclock (the frame's
//! due instant through one [`WallclockEpoch`]), so a tool that records two clients — or audio
//! from one and video from another — lines them up as one timeline. A report is sent before a
//! track's first packet (a receiver syncs from its first frame, not a second later) and then
//! about once a second; its NTP/RTP pair is a sent frame's own, so it carries no jitter of the
//! moment it was written.

use std::time::{Duration, Instant};

use lockstep_media::h264::{split_annex_b, H264Packetizer};
use lockstep_media::{h265, Codec, LiveFrame, LiveMedia};
use lockstep_rtsp::rtp::{rtp_packet, sender_report};
use lockstep_sync::NtpTime;
use lockstep_webrtc::WallclockEpoch;

/// Sender reports this often (RFC 3550's 5 s minimum interval is for large sessions; one a
/// second is what cameras send and what receivers' lip sync converges on quickly).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// RTP payloads at most this long: a 1500-byte MTU with IP, UDP and RTP headers to spare.
const MAX_PAYLOAD: usize = 1_200;
/// The CNAME both tracks of a client's session share (RFC 3550: one per synchronized source).
const CNAME: &str = "lockstep";

/// What a sender produces for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Rtp(Vec<u8>),
    Rtcp(Vec<u8>),
}

#[derive(Debug)]
pub struct RtpSender {
    pub payload_type: u8,
    pub ssrc: u32,
    /// Sequence number of the next packet.
    pub next_seq: u16,
    /// Added to a frame's `pts` (ticks of the track's clock) to make its RTP timestamp.
    timestamp_offset: u32,
    epoch: WallclockEpoch,
    packet_count: u32,
    octet_count: u32,
    last_report: Option<Instant>,
}

impl RtpSender {
    pub fn new(
        payload_type: u8,
        ssrc: u32,
        first_seq: u16,
        timestamp_offset: u32,
        epoch: WallclockEpoch,
    ) -> Self {
        RtpSender {
            payload_type,
            ssrc,
            next_seq: first_seq,
            timestamp_offset,
            epoch,
            packet_count: 0,
            octet_count: 0,
            last_report: None,
        }
    }

    /// The RTP timestamp of a frame stamped `pts` on the output timeline.
    pub fn rtp_timestamp(&self, pts: i64) -> u32 {
        (pts as u32).wrapping_add(self.timestamp_offset)
    }

    /// The packets of one frame, after a sender report when one is due at `now`.
    pub fn frame(&mut self, frame: &LiveFrame, now: Instant, out: &mut Vec<Outgoing>) {
        let timestamp = self.rtp_timestamp(frame.pts);
        if self
            .last_report
            .is_none_or(|at| now.duration_since(at) >= REPORT_INTERVAL)
        {
            let ntp = NtpTime::from_system_time(self.epoch.system_time(frame.due));
            out.push(Outgoing::Rtcp(sender_report(
                self.ssrc,
                ntp,
                timestamp,
                self.packet_count,
                self.octet_count,
                CNAME,
            )));
            self.last_report = Some(now);
        }
        let mut payloads = Vec::new();
        match frame.media {
            LiveMedia::Video { codec, .. } => {
                let nals = split_annex_b(&frame.data);
                if codec == Codec::H265 {
                    h265::packetize(&nals, MAX_PAYLOAD, &mut payloads);
                } else {
                    H264Packetizer {
                        max_payload: MAX_PAYLOAD,
                    }
                    .packetize(&nals, &mut payloads);
                }
            }
            LiveMedia::Opus => payloads.push(frame.data.to_vec()),
        }
        let count = payloads.len();
        for (i, payload) in payloads.into_iter().enumerate() {
            // Video: the marker ends an access unit. Audio: each Opus packet stands alone.
            let marker = frame.is_video() && i + 1 == count;
            out.push(Outgoing::Rtp(rtp_packet(
                self.payload_type,
                marker,
                self.next_seq,
                timestamp,
                self.ssrc,
                &payload,
            )));
            self.next_seq = self.next_seq.wrapping_add(1);
            self.packet_count = self.packet_count.wrapping_add(1);
            self.octet_count = self.octet_count.wrapping_add(payload.len() as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lockstep_rtsp::rtp::{parse_rtp, parse_sender_report};

    use super::*;

    fn frame(media: LiveMedia, due: Instant, pts: i64, data: Vec<u8>) -> LiveFrame {
        LiveFrame {
            media,
            due,
            pts,
            data: Arc::from(data),
        }
    }

    #[test]
    fn a_report_comes_first_then_once_a_second_with_the_frames_own_stamps() {
        let epoch = WallclockEpoch::now();
        let start = Instant::now();
        let mut sender = RtpSender::new(111, 7, 100, 1_000, epoch);
        let mut out = Vec::new();
        for i in 0..100i64 {
            let due = start + Duration::from_millis(20 * i as u64);
            sender.frame(
                &frame(LiveMedia::Opus, due, 960 * i, vec![1, 2, 3]),
                due,
                &mut out,
            );
        }
        let reports: Vec<_> = out
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Outgoing::Rtcp(r) => Some((i, parse_sender_report(r).expect("an SR"))),
                Outgoing::Rtp(_) => None,
            })
            .collect();
        // Before the first packet, then at 1 s: frames 0 and 50.
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].0, 0);
        let (_, second) = &reports[1];
        assert_eq!(second.rtp_timestamp, 1_000 + 960 * 50);
        let due_50 = epoch.system_time(start + Duration::from_secs(1));
        let expected = NtpTime::from_system_time(due_50).as_unix_nanos();
        assert!((second.ntp.as_unix_nanos() - expected).abs() < 1_000);
        let packets: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Outgoing::Rtp(p) => Some(parse_rtp(p).expect("RTP")),
                Outgoing::Rtcp(_) => None,
            })
            .collect();
        assert_eq!(packets.len(), 100);
        assert_eq!(packets[0].seq, 100);
        assert_eq!(packets[99].seq, 199);
        assert_eq!(packets[99].timestamp, 1_000 + 960 * 99);
    }

    #[test]
    fn an_access_unit_is_cut_to_the_mtu_and_its_last_packet_is_marked() {
        let mut sender = RtpSender::new(96, 1, u16::MAX, 0, WallclockEpoch::now());
        let mut annex_b = vec![0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 0, 1, 0x65];
        annex_b.extend(std::iter::repeat_n(0xaa, 3_000));
        let now = Instant::now();
        let video = LiveMedia::Video {
            codec: Codec::H264,
            keyframe: true,
        };
        let mut out = Vec::new();
        sender.frame(&frame(video, now, 90_000, annex_b), now, &mut out);
        let packets: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Outgoing::Rtp(p) => Some(p.clone()),
                Outgoing::Rtcp(_) => None,
            })
            .collect();
        // The SPS whole, the 3 001-byte slice in three FU-A pieces.
        assert_eq!(packets.len(), 4);
        assert!(packets.iter().all(|p| p.len() <= 12 + MAX_PAYLOAD));
        let headers: Vec<_> = packets.iter().map(|p| parse_rtp(p).unwrap()).collect();
        assert_eq!(
            headers.iter().map(|h| h.marker).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        // The sequence wraps.
        assert_eq!(headers[1].seq, 0);
        assert!(headers.iter().all(|h| h.timestamp == 90_000));
    }
}
