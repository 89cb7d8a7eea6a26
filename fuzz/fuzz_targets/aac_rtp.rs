//! Any SDP `fmtp` and any packets as an AAC track: the config parsers (AudioSpecificConfig,
//! StreamMuxConfig, AU-header lengths) accept or refuse with a reason, and the depacketizer
//! turns packets (RFC 3640 AU headers and fragments, LATM length runs) into AUs that are never
//! longer than the bytes that came in, or an error. Never a panic.
//!
//! `cargo fuzz run aac_rtp` (from `fuzz/`).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockstep_media::aac_rtp::{AacDepacketizer, AacTrackFormat};

#[derive(Debug, Arbitrary)]
struct Input {
    latm: bool,
    fmtp: String,
    packets: Vec<(Vec<u8>, bool, bool)>,
}

fuzz_target!(|input: Input| {
    let name = if input.latm { "MP4A-LATM" } else { "mpeg4-generic" };
    let Some(Ok(format)) = AacTrackFormat::from_sdp(name, &input.fmtp) else {
        return;
    };
    let mut depacketizer = AacDepacketizer::new(format.payload);
    let mut received = 0usize;
    let mut produced = 0usize;
    let mut aus = Vec::new();
    for (payload, marker, lost_before) in &input.packets {
        if *lost_before {
            depacketizer.handle_loss();
        }
        received += payload.len();
        aus.clear();
        if depacketizer.push(payload, *marker, &mut aus).is_ok() {
            produced += aus.iter().map(Vec::len).sum::<usize>();
        }
        assert!(produced <= received);
    }
});
