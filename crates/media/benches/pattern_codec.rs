//! What the instruments cost: H.264 encoding of the beep-flash pattern (the bulk of a simulated
//! camera's CPU) and decoding + analysis (the bulk of `lockstep measure`). Prints a Markdown table.
//!
//! `cargo bench -p lockstep-media --bench pattern_codec`

use std::time::Instant;

use lockstep_media::beep_flash::observe_picture;
use lockstep_media::h264::H264Packetizer;
use lockstep_media::pattern::{I420Frame, StripeData};
use lockstep_media::{H264Decoder, H264Encoder};

const FPS: u32 = 30;
const FRAMES: u32 = 150;

struct Row {
    size: &'static str,
    encode_ms: f64,
    packetize_us: f64,
    decode_observe_ms: f64,
}

// A bench times itself with the real clock.
#[allow(clippy::disallowed_methods)]
fn measure(width: usize, height: usize, size: &'static str, bitrate: u32) -> Row {
    let mut encoder = H264Encoder::new(FPS, bitrate, FPS * 2).expect("encoder");
    let mut frame = I420Frame::new(width, height);
    let mut encoded = Vec::with_capacity(FRAMES as usize);
    let started = Instant::now();
    for i in 0..FRAMES {
        frame.draw(
            i % FPS == 0,
            StripeData {
                frame_index: i,
                capture_unix_micros: Some(1_763_800_000_000_000 + u64::from(i) * 33_333),
            },
        );
        encoded.push(encoder.encode(&frame).expect("encode"));
    }
    let encode_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(FRAMES);

    let packetizer = H264Packetizer::default();
    let started = Instant::now();
    let mut packets = 0usize;
    for e in &encoded {
        let nals: Vec<&[u8]> = e.nals.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        packetizer.packetize(&nals, &mut out);
        packets += out.len();
    }
    let packetize_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(FRAMES);
    assert!(packets >= FRAMES as usize);

    let mut decoder = H264Decoder::new().expect("decoder");
    let started = Instant::now();
    let mut flashes = 0;
    for (i, e) in encoded.iter().enumerate() {
        let mut annex_b = Vec::new();
        for nal in &e.nals {
            annex_b.extend_from_slice(&[0, 0, 0, 1]);
            annex_b.extend_from_slice(nal);
        }
        let luma = decoder.decode(&annex_b).expect("decode").expect("picture");
        let o = observe_picture(
            i as f64 / 30.0,
            &luma.y,
            luma.stride,
            luma.width,
            luma.height,
        );
        assert!(o.stripe.is_some());
        flashes += usize::from(o.flash);
    }
    let decode_observe_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(FRAMES);
    assert_eq!(flashes, (FRAMES / FPS) as usize);
    Row {
        size,
        encode_ms,
        packetize_us,
        decode_observe_ms,
    }
}

fn main() {
    let rows = [
        measure(640, 360, "640x360", 1_500_000),
        measure(1920, 1080, "1920x1080", 4_000_000),
    ];
    println!(
        "| size | encode (ms/frame) | live camera at 30 fps (% of a core) | live cameras per core | \
         replay: packetize only (µs/frame) | measure: decode + analyse (ms/frame) | measure \
         throughput (s of 30 fps video per s) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let live_share = r.encode_ms * f64::from(FPS) / 10.0;
        println!(
            "| {} | {:.2} | {:.1} % | {:.1} | {:.1} | {:.2} | {:.1} |",
            r.size,
            r.encode_ms,
            live_share,
            100.0 / live_share,
            r.packetize_us,
            r.decode_observe_ms,
            1e3 / (r.decode_observe_ms * f64::from(FPS)),
        );
    }
}
