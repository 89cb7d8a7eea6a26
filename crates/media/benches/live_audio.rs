//! The live audio path per camera with a listener: G.711 decode, resample at 8 kHz for drift
//! (rubato sinc, ratio trimmed per chunk as the retimer does), Opus encode at 8 kHz, per 20 ms of
//! audio.
//! Prints a Markdown table.
//!
//! `cargo bench -p lockstep-media --bench live_audio`

use std::time::Instant;

use lockstep_media::g711::G711Law;
use lockstep_media::{AudioDecoder, LiveAudioEncoder};

const CHUNKS: i64 = 3_000; // 60 s of audio

// A bench times itself with the real clock.
#[allow(clippy::disallowed_methods)]
fn main() {
    let mut decoder = AudioDecoder::G711(G711Law::ALaw);
    let mut encoder = LiveAudioEncoder::new().expect("encoder");
    // A 1 kHz tone, A-law encoded by decoding the inverse: any bytes are valid A-law.
    let payloads: Vec<Vec<u8>> = (0..50)
        .map(|c| (0..160).map(|i| ((c * 160 + i) * 37 % 251) as u8).collect())
        .collect();
    let mut pcm = Vec::with_capacity(160);
    let mut packets = Vec::new();
    let mut position = 0.0f64;
    let mut decode_ns = 0u128;
    let started = Instant::now();
    for chunk in 0..CHUNKS {
        let t = Instant::now();
        pcm.clear();
        decoder
            .decode_first_channel(&payloads[(chunk % 50) as usize], 1, &mut pcm)
            .expect("decodes");
        decode_ns += t.elapsed().as_nanos();
        // The retimer's ratio wanders by a few hundred ppm; so does ours.
        let ratio = 6.0 * (1.0 + 300e-6 * ((chunk as f64) / 500.0).sin());
        encoder
            .push_audio(position.floor() as i64, 8_000, &pcm, ratio, &mut packets)
            .expect("encodes");
        position += 160.0 * ratio;
    }
    let total = started.elapsed().as_secs_f64();
    let per_chunk_us = total * 1e6 / CHUNKS as f64;
    let decode_us = decode_ns as f64 / 1e3 / CHUNKS as f64;
    println!("| step (per 20 ms of audio) | µs |\n|---|---|");
    println!("| G.711 decode | {decode_us:.2} |");
    println!(
        "| resample (8 kHz, drift only) + Opus 32 kbit/s encode | {:.1} |",
        per_chunk_us - decode_us
    );
    println!("| whole audio path | {per_chunk_us:.1} |");
    println!(
        "\n{} packets from {CHUNKS} chunks; one camera with a listener costs {:.2} % of a core \
         in audio (≈ {:.0} cameras per core)",
        packets.len(),
        per_chunk_us / 20_000.0 * 100.0,
        20_000.0 / per_chunk_us
    );
}
