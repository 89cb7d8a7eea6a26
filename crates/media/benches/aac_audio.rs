//! The live audio path of an AAC camera with a listener, beside the G.711 one (`live_audio`):
//! RFC 3640 depacketize, AAC-LC decode (symphonia), resample at 16 kHz for drift, Opus encode at
//! 16 kHz, per 64 ms AU (1024 samples at 16 kHz), reported per 20 ms of audio. The AUs are real:
//! ffmpeg's AAC encoder makes 60 s of a 1 kHz tone at 32 kbit/s (ADTS), as a camera's encoder
//! would.
//!
//! `cargo bench -p lockstep-media --bench aac_audio` (needs ffmpeg)

use std::process::Command;
use std::time::Instant;

use lockstep_media::aac_rtp::{AacDepacketizer, AacPayloadFormat, AuHeaderLayout};
use lockstep_media::{AudioDecoder, LiveAudioEncoder};

const RATE_HZ: u32 = 16_000;

/// The raw AUs of an ADTS stream (7-byte headers without CRC).
fn adts_frames(data: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 7 <= data.len() && data[at] == 0xff && data[at + 1] & 0xf0 == 0xf0 {
        let len = (usize::from(data[at + 3] & 0x03) << 11)
            | (usize::from(data[at + 4]) << 3)
            | usize::from(data[at + 5] >> 5);
        let header = if data[at + 1] & 1 == 1 { 7 } else { 9 };
        if len < header || at + len > data.len() {
            break;
        }
        frames.push(data[at + header..at + len].to_vec());
        at += len;
    }
    frames
}

// A bench times itself with the real clock.
#[allow(clippy::disallowed_methods)]
fn main() {
    let path = std::env::temp_dir().join("lockstep-bench-tone.aac");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=1000:sample_rate={RATE_HZ}:duration=60"
        ))
        .args(["-c:a", "aac", "-b:a", "32k", "-f", "adts"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg made the AAC");
    let aus = adts_frames(&std::fs::read(&path).expect("the AAC file"));
    assert!(aus.len() > 900, "{} AUs", aus.len());
    // One AU per packet, as cameras send: a 13-bit size + 3-bit index AU header.
    let packets: Vec<Vec<u8>> = aus
        .iter()
        .map(|au| {
            let mut p = vec![0, 16];
            p.extend(((au.len() as u16) << 3).to_be_bytes());
            p.extend_from_slice(au);
            p
        })
        .collect();

    let mut depacketizer = AacDepacketizer::new(AacPayloadFormat::Generic(AuHeaderLayout::AAC_HBR));
    // 16 kHz mono AAC-LC.
    let mut decoder = AudioDecoder::aac(&[0x14, 0x08], RATE_HZ).expect("decoder");
    let mut encoder = LiveAudioEncoder::new().expect("encoder");
    let (mut unpacked, mut pcm, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let (mut unpack_ns, mut decode_ns) = (0u128, 0u128);
    let mut position = 0.0f64;
    let mut samples = 0usize;
    let started = Instant::now();
    for (i, packet) in packets.iter().enumerate() {
        let t = Instant::now();
        unpacked.clear();
        depacketizer
            .push(packet, true, &mut unpacked)
            .expect("depacketizes");
        unpack_ns += t.elapsed().as_nanos();
        let t = Instant::now();
        pcm.clear();
        for au in &unpacked {
            decoder
                .decode_first_channel(au, 1, &mut pcm)
                .expect("decodes");
        }
        decode_ns += t.elapsed().as_nanos();
        samples += pcm.len();
        let ratio = 3.0 * (1.0 + 300e-6 * ((i as f64) / 150.0).sin());
        encoder
            .push_audio(position.floor() as i64, RATE_HZ, &pcm, ratio, &mut out)
            .expect("encodes");
        position += pcm.len() as f64 * ratio;
    }
    let total_ns = started.elapsed().as_nanos() as f64;
    // Per 20 ms of audio.
    let per_20ms = |ns: f64| ns / 1e3 / (samples as f64 / (f64::from(RATE_HZ) * 0.02));
    let whole = per_20ms(total_ns);
    println!("| step (per 20 ms of audio) | µs |\n|---|---|");
    println!(
        "| RFC 3640 depacketize | {:.2} |",
        per_20ms(unpack_ns as f64)
    );
    println!(
        "| AAC-LC decode (symphonia) | {:.1} |",
        per_20ms(decode_ns as f64)
    );
    println!(
        "| resample (16 kHz, drift only) + Opus 32 kbit/s encode | {:.1} |",
        whole - per_20ms((unpack_ns + decode_ns) as f64)
    );
    println!("| whole audio path | {whole:.1} |");
    println!(
        "\n{} AUs, {} Opus packets; one AAC camera with a listener costs {:.2} % of a core in \
         audio (≈ {:.0} cameras per core)",
        aus.len(),
        out.len(),
        whole / 20_000.0 * 100.0,
        20_000.0 / whole
    );
}
