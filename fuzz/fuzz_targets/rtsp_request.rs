//! Any bytes a client could send to the camera's RTSP port: the parser either asks for more,
//! returns a frame that accounts for the bytes it used, or says what is wrong. Never a panic.
//!
//! `cargo fuzz run rtsp_request` (from `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_rtsp::message::{parse_frame, Frame, MAX_BODY_BYTES};
use lockstep_rtsp::transport;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((frame, used))) = parse_frame(rest) {
        assert!(used > 0 && used <= rest.len());
        if let Frame::Request(request) = &frame {
            assert!(request.body.len() <= MAX_BODY_BYTES);
            let _ = request.cseq();
            if let Some(t) = request.header("Transport") {
                let _ = transport::choose(t);
            }
        }
        rest = &rest[used..];
    }
});
