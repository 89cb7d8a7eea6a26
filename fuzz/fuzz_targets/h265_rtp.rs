//! Any packets as an H.265 track (RFC 7798 single NAL units, aggregation packets, fragmentation
//! units, with losses between them), any `fmtp` for the SDP's parameter sets, and any NAL unit
//! as an SPS: access units come out no longer than the bytes that came in (plus the start
//! codes and rebuilt NAL headers), or nothing. Never a panic.
//!
//! `cargo fuzz run h265_rtp` (from `fuzz/`).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockstep_media::h265::{check_decoding_order, sdp_parameter_sets, H265Depacketizer};
use lockstep_media::h265_sps::H265Sps;

#[derive(Debug, Arbitrary)]
struct Input {
    fmtp: String,
    sps: Vec<u8>,
    packets: Vec<(Vec<u8>, bool, bool)>,
}

fuzz_target!(|input: Input| {
    let _ = check_decoding_order(&input.fmtp);
    let _ = sdp_parameter_sets(&input.fmtp);
    if let Some(sps) = H265Sps::parse(&input.sps) {
        assert!(sps.chroma_format_idc <= 3, "{sps:?}");
    }
    let mut depacketizer = H265Depacketizer::default();
    let mut received = 0usize;
    let mut produced = 0usize;
    for (payload, marker, lost_before) in &input.packets {
        if *lost_before {
            depacketizer.handle_loss();
        }
        // A NAL unit gains a 4-byte start code; the smallest one that can (a 2-byte NAL in an
        // aggregation packet, behind its 2-byte size) at most doubles.
        received += payload.len();
        if let Some(unit) = depacketizer.push(payload, *marker) {
            produced += unit.annex_b.len();
        }
        assert!(produced <= received * 3 + 4, "{produced} from {received}");
    }
});
