//! Anything a camera's HTTP API could answer lockstep (Hikvision's ISAPI, for talk): the answer
//! parser at every length and with the connection open or closed, the two-way audio channel
//! list, and the bytes as G.726 for a speaker. Each returns what it could read or an error —
//! never a panic, never a body of more characters than bytes came.
//!
//! `cargo fuzz run camera_answer` (from `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::camera_http::parse_answer;
use lockstep::talk::isapi::channel_from_list;
use lockstep_media::g726::{G726Decoder, G726Packing};

fuzz_target!(|data: &[u8]| {
    for closed in [false, true] {
        match parse_answer(data, closed) {
            Ok(Some(answer)) => {
                // Bytes that are not UTF-8 become U+FFFD (three bytes): count characters.
                assert!(answer.response.body.chars().count() <= data.len());
                assert!(answer.used <= data.len());
                let _ = channel_from_list(&answer.response.body);
            }
            Ok(None) => assert!(!closed, "a closed connection's answer is whole or an error"),
            Err(_) => {}
        }
    }
    let _ = channel_from_list(&String::from_utf8_lossy(data));
    let mut pcm = Vec::new();
    G726Decoder::new().decode(data, G726Packing::Aal2, &mut pcm);
    assert_eq!(pcm.len(), data.len() * 2);
});
