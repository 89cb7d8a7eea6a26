//! Anything a browser (or anyone) can POST to `/api/whep/{name}` and send to the WebRTC port:
//! the STUN router, the codec check, str0m's SDP parser and offer acceptance, and our rewrite of
//! the answer. Errors are fine; panics are not, and the rewritten answer must still parse.
//!
//! `cargo fuzz run whep_offer corpus/whep_offer seeds/whep_offer` (from `fuzz/`; the seed is
//! Chromium's receive-only offer).

#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use lockstep_media::Codec;
use lockstep_webrtc::udp_mux::stun_local_ufrag;
use lockstep_webrtc::whep::{check_codecs, one_media_stream};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::RtcConfig;

fuzz_target!(|data: &[u8]| {
    if let Some(ufrag) = stun_local_ufrag(data) {
        // The ufrag is a slice of the packet itself.
        let start = ufrag.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + ufrag.len() <= data.len());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for video in [Codec::H264, Codec::H265] {
        let _ = check_codecs(text, video);
    }
    let _ = one_media_stream(text);
    let Ok(offer) = SdpOffer::from_sdp_string(text) else {
        return;
    };
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    if let Ok(answer) = rtc.sdp_api().accept_offer(offer) {
        let rewritten = one_media_stream(&answer.to_sdp_string());
        assert!(
            SdpAnswer::from_sdp_string(&rewritten).is_ok(),
            "the rewritten answer no longer parses:\n{rewritten}"
        );
    }
});
