//! Anything a camera could answer lockstep's RTSP client: a response or media frames (the frame
//! parser), an SDP, an `RTP-Info` header, a `WWW-Authenticate` challenge and an RTCP compound
//! packet. Each parser returns what it could read or nothing — never a panic, never a payload
//! type an RTP header cannot carry.
//!
//! `cargo fuzz run rtsp_answer` (from `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_rtsp::auth::{Challenge, Credentials};
use lockstep_rtsp::client::parse_rtp_info;
use lockstep_rtsp::message::{parse_frame, Frame, MAX_BODY_BYTES};
use lockstep_rtsp::rtp::parse_sender_report;
use lockstep_rtsp::sdp::Sdp;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((frame, used))) = parse_frame(rest) {
        assert!(used > 0 && used <= rest.len());
        if let Frame::Response(reply) = &frame {
            assert!(reply.body.len() <= MAX_BODY_BYTES);
            assert!((100..=999).contains(&reply.status));
            let _ = reply.cseq();
            if let Ok(challenge) = Challenge::choose(reply.headers_named("WWW-Authenticate")) {
                let creds = Credentials {
                    user: "u".into(),
                    password: "p".into(),
                };
                let _ = challenge.authorization(&creds, "DESCRIBE", "rtsp://h/", 1, "c");
            }
        }
        rest = &rest[used..];
    }
    let text = String::from_utf8_lossy(data);
    let sdp = Sdp::parse(&text);
    assert!(sdp.media.len() <= 32);
    assert!(sdp.media.iter().all(|m| m.payload_type < 128));
    if let Some(m) = sdp.media.first() {
        let _ = m.setup_url(&url::Url::parse("rtsp://h/cam?x=1").expect("url"));
    }
    let _ = parse_rtp_info(&text);
    let _ = parse_sender_report(data);
});
