//! Anything that can arrive on a camera session's UDP ports: datagrams (each prefixed here by a
//! length byte and an arrival step) read as RTP into the reception statistics, as RTCP for
//! sender reports, and as receiver reports (what the simulator reads from clients). Nothing
//! panics; every receiver report block written is read back the same; a report's numbers stay
//! in their wire ranges.
//!
//! `cargo fuzz run udp_datagram` (from `fuzz/`).

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use lockstep_rtsp::reception::ReceptionStats;
use lockstep_rtsp::rtp::{parse_receiver_reports, parse_rtp, parse_sender_report, receiver_report};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut at = t0;
    let mut stats = ReceptionStats::new(90_000);
    let mut rest = data;
    while let [len, step, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        at += Duration::from_micros(u64::from(*step) * 500);
        if let Ok(header) = parse_rtp(datagram) {
            assert!(header.payload_offset <= header.payload_end);
            assert!(header.payload_end <= datagram.len());
            stats.on_rtp(header.ssrc, header.seq, header.timestamp, at);
        }
        if let Some(sr) = parse_sender_report(datagram) {
            stats.on_sender_report(sr.ntp.as_bits(), at);
        }
        let blocks = parse_receiver_reports(datagram);
        if !blocks.is_empty() && blocks.len() <= 31 {
            let written = receiver_report(1, &blocks, "fuzz");
            assert_eq!(parse_receiver_reports(&written), blocks);
        }
        if *step == 0xff {
            if let Some(block) = stats.report_block(at) {
                assert!((-0x80_0000..=0x7f_ffff).contains(&block.cumulative_lost));
                let written = receiver_report(2, &[block], "fuzz");
                assert_eq!(parse_receiver_reports(&written), [block]);
            }
        }
    }
});
