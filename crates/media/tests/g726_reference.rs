//! Our G.726 32 kbit/s encoder against a decoder we did not write: Sun's reference G.721 code
//! as sox ships it (a Sun `.au` file, encoding 23, codewords packed low nibble first as in RFC
//! 3551). A camera's speaker runs the recommendation's adaptation; an encoder whose arithmetic
//! strays from it drifts out of step with every decoder, which shows as noise. (ffmpeg's
//! decoder, also GStreamer's `avdec_g726`, rounds the recommendation's MIX block its own way:
//! it reads this same stream at about 16 dB, the reference at 31.)

use std::process::Command;

use lockstep_media::g726::{G726Decoder, G726Encoder, G726Packing};

/// A voice-like test signal at 8 kHz: a gliding pitch with harmonics, in syllables.
fn voice(samples: usize) -> Vec<i16> {
    let mut phase = 0.0f64;
    (0..samples)
        .map(|n| {
            let t = n as f64 / 8_000.0;
            if (t * 4.0).floor() as i64 % 4 == 3 {
                return 0;
            }
            let pitch = 110.0 + 60.0 * (t * 1.3).sin();
            phase += pitch / 8_000.0;
            let voiced: f64 = (1..=12)
                .map(|k| (2.0 * std::f64::consts::PI * f64::from(k) * phase).sin() / f64::from(k))
                .sum();
            (4_000.0 * voiced) as i16
        })
        .collect()
}

fn snr_db(reference: &[i16], decoded: &[i16]) -> f64 {
    let (mut signal, mut noise) = (0.0, 0.0);
    for (&r, &d) in reference.iter().zip(decoded).skip(800) {
        signal += f64::from(r).powi(2);
        noise += (f64::from(r) - f64::from(d)).powi(2);
    }
    10.0 * (signal / noise.max(1.0)).log10()
}

#[test]
fn sun_reference_decoder_reads_our_g726_as_our_decoder_does() {
    let input = voice(8_000 * 5);
    let mut bytes = Vec::new();
    let mut encoder = G726Encoder::new();
    // In 20 ms packets, as the backchannel sends them.
    for frame in input.chunks(160) {
        encoder.encode(frame, G726Packing::Rfc3551, &mut bytes);
    }
    let dir = std::env::temp_dir().join(format!("lockstep-g726-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let au = dir.join("speech.au");
    let raw = dir.join("speech.s16");
    let mut file = Vec::new();
    for word in [0x2e73_6e64u32, 28, bytes.len() as u32, 23, 8_000, 1, 0] {
        file.extend_from_slice(&word.to_be_bytes());
    }
    file.extend_from_slice(&bytes);
    std::fs::write(&au, &file).expect("written");
    let status = Command::new("sox")
        .arg(&au)
        .args(["-t", "raw", "-e", "signed-integer", "-b", "16", "-L"])
        .arg(&raw)
        .status()
        .expect("sox runs (.ci/run installs it)");
    assert!(status.success(), "sox failed");
    let theirs: Vec<i16> = std::fs::read(&raw)
        .expect("decoded")
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let mut ours = Vec::new();
    G726Decoder::new().decode(&bytes, G726Packing::Rfc3551, &mut ours);
    assert_eq!(theirs.len(), input.len());
    // Bit for bit the same decoder: the same samples.
    let differing = theirs.iter().zip(&ours).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing, 0,
        "{differing} samples differ from the reference"
    );
    let snr = snr_db(&input, &theirs);
    assert!(snr > 25.0, "SNR {snr:.1} dB");
}
