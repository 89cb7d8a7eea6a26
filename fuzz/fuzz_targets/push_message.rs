//! The push protocol (`/api/push/{name}`): hellos, controls and media messages from a producer,
//! and media through the capture clock and the audio path. Invariants: no panic; a parsed
//! payload is the tail of the message; a hello declares something; audio packets come out
//! exactly 960 ticks apart whatever was pushed.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use lockstep_media::{Placement, PushAudio};
use lockstep_sync::LocalInstant;

use lockstep::live::push_protocol::{
    parse_control, parse_hello, parse_media, CaptureClock, MediaKind,
};

const HELLO: &str = r#"{"type":"hello","audio":{"rate":24000,"channels":2,"format":"s16le"},"video":{"width":64,"height":64,"format":"i420","fps":30}}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            if let Ok(hello) = parse_hello(text) {
                assert!(hello.audio.is_some() || hello.video.is_some());
                assert!(hello.max_message_bytes() >= 4096);
            }
            let _ = parse_control(text);
        }
        return;
    }
    let hello = parse_hello(HELLO).expect("the fixed hello parses");
    let Ok(media) = parse_media(rest, &hello) else {
        return;
    };
    assert!(rest.ends_with(media.payload));
    let start = LocalInstant::from_millis(1_000);
    let mut clock = CaptureClock::new(Duration::from_millis(50), Some(0), start);
    let Ok(due) = clock.due(media.capture_us, start) else {
        return;
    };
    // The audio path builds an encoder and a resampler (~70 ms): one input in eight takes it.
    if media.kind != MediaKind::Audio || selector % 8 != 1 {
        return;
    }
    let Some(format) = hello.audio else { return };
    let Ok(mut audio) = PushAudio::new(format, 96_000) else {
        return;
    };
    let at = (i128::from(due.as_nanos()) * 48_000 / 1_000_000_000) as i64;
    let placement = if media.capture_us.is_some() {
        Placement::At(at)
    } else {
        Placement::AfterQueued { earliest: at }
    };
    let _ = audio.push(placement, media.payload);
    let mut out = Vec::new();
    let _ = audio.release(96_000 + 9_600, &mut out);
    for pair in out.windows(2) {
        assert_eq!(pair[1].pts - pair[0].pts, 960);
    }
});
