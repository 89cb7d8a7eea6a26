//! What a browser sent against what a camera's speaker got: the delay from the browser's
//! microphone to the speaker, and how alike the two are.
//!
//! The browser side is its microphone track as sent (tapped in the page, `web/tests/talk.mjs`):
//! 10 ms chunks stamped with their capture instant. The speaker side is every sample the camera's
//! speaker was handed with the instant its 20 ms buffer arrived (`onvif_camera.py --record`).
//! Both are on this machine's clock.
//!
//! Delay: loudness on a 10 ms grid on both sides; the lag that lines them up best, then each
//! syllable's onset in the browser matched to the speaker's onset near that lag. The instrument's
//! precision is the grid: ±10 ms per onset (a chunk's timestamp is its capture instant within
//! 1–2 ms; a buffer's arrival is its first sample's, the rest of it 0–20 ms later).
//!
//! Likeness: the browser's samples brought to 8 kHz (a windowed-sinc low-pass, then every 6th),
//! and each half second of what the speaker got correlated with them at the delay, searched
//! ±40 ms around it (a dropped pause moves the speech by 20 ms). Waveforms are compared, and —
//! at the alignment found — the magnitude spectra of 32 ms frames (100–3 400 Hz): Opus's
//! speech mode (SILK, what Chromium sends a microphone at) keeps the spectrum, pitch and level,
//! not the waveform, so the waveform's correlation is bounded by the codec (about 0.85 here),
//! the spectrum's is not. Level: the speaker's loudness over the browser's.

use serde_json::Value;

/// One 10 ms chunk of the browser's microphone track.
#[derive(Debug, Clone)]
pub struct TapChunk {
    /// Its capture instant (Unix time, ms).
    pub unix_ms: f64,
    pub rate_hz: u32,
    pub pcm: Vec<i16>,
}

/// The chunks `talk.mjs` returned under `tap`.
pub fn tap_chunks(tap: &Value) -> Vec<TapChunk> {
    tap.as_array()
        .map(|chunks| {
            chunks
                .iter()
                .map(|c| TapChunk {
                    unix_ms: c["unix_ms"].as_f64().unwrap_or(0.0),
                    rate_hz: c["rate"].as_u64().unwrap_or(48_000) as u32,
                    pcm: c["pcm"]
                        .as_array()
                        .map(|s| s.iter().map(|x| x.as_i64().unwrap_or(0) as i16).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Measures what a run left: the tap `talk.mjs` wrote (`tap_json`), the speaker's recording
/// (`speaker_pcm`: 16-bit LE at 8 kHz, as `onvif_camera.py --record` writes it) and its
/// buffers' arrivals and sizes.
pub fn measure_files(
    tap_json: &std::path::Path,
    speaker_pcm: &std::path::Path,
    speaker: &[(f64, usize)],
) -> MouthToSpeaker {
    let tap: Value = serde_json::from_slice(&std::fs::read(tap_json).expect("the page's tap"))
        .expect("the tap is JSON");
    let pcm: Vec<i16> = std::fs::read(speaker_pcm)
        .expect("the speaker's recording")
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    measure(&tap_chunks(&tap), speaker, &pcm)
}

/// What was measured.
#[derive(Debug, Clone, Default)]
pub struct MouthToSpeaker {
    /// The lag that lines the loudness up best (ms).
    pub lag_ms: f64,
    /// Per syllable onset: browser capture → speaker (ms).
    pub latencies_ms: Vec<f64>,
    /// Per half second of speech at the speaker: the best correlation with what the browser
    /// sent, at the delay ±40 ms.
    pub correlations: Vec<f64>,
    /// Per 32 ms frame of speech (20 ms apart), aligned as above: the correlation of the two
    /// magnitude spectra over 100–3 400 Hz.
    pub spectral_correlations: Vec<f64>,
    /// The speaker's loudness over the browser's, in dB, over the aligned speech.
    pub level_db: f64,
}

const GRID_MS: f64 = 10.0;
const SPEAKER_RATE: usize = 8_000;

/// `speaker`: each buffer's arrival (Unix ms) and sample count, in order; `speaker_pcm`: the
/// samples themselves (8 kHz).
pub fn measure(tap: &[TapChunk], speaker: &[(f64, usize)], speaker_pcm: &[i16]) -> MouthToSpeaker {
    let Some(first) = tap.first() else {
        return MouthToSpeaker::default();
    };
    let origin = first.unix_ms;
    let end = speaker.last().map_or(origin, |b| b.0) + 1_000.0;
    let bins = ((end - origin) / GRID_MS).max(1.0) as usize + 1;
    let bin = |t: f64| ((t - origin) / GRID_MS).floor();

    let mut sent = Loudness::new(bins);
    for chunk in tap {
        sent.add(bin(chunk.unix_ms), &chunk.pcm);
    }
    // A speaker buffer's halves play 0 and 10 ms after it arrives.
    let mut heard = Loudness::new(bins);
    let mut at = 0;
    for &(arrival_ms, samples) in speaker {
        let pcm = &speaker_pcm[at.min(speaker_pcm.len())..(at + samples).min(speaker_pcm.len())];
        for (k, part) in pcm.chunks(SPEAKER_RATE / 100).enumerate() {
            heard.add(bin(arrival_ms + k as f64 * GRID_MS), part);
        }
        at += samples;
    }
    let (sent, heard) = (sent.rms(), heard.rms());
    let lag = best_lag(&sent, &heard, 150);
    let latencies_ms = onsets(&sent)
        .into_iter()
        .filter_map(|i| {
            let loud = 0.3 * max(&heard);
            // Never before the browser had it (a causal match), else near the lag.
            let from = (i + lag).saturating_sub(6).max(i);
            (from..(i + lag + 7).min(heard.len()))
                .find(|&j| heard[j] > loud && heard[j.saturating_sub(1)] <= loud)
                .map(|j| (j as f64 - i as f64) * GRID_MS)
        })
        .collect();

    let sent_8k = to_8k(
        &tap.iter()
            .flat_map(|c| c.pcm.iter().copied())
            .collect::<Vec<_>>(),
        first.rate_hz,
    );
    let mut correlations = Vec::new();
    let mut spectral_correlations = Vec::new();
    let (mut heard_energy, mut sent_energy) = (0.0, 0.0);
    let window = SPEAKER_RATE / 2;
    let search = SPEAKER_RATE * 40 / 1_000;
    // Each buffer's first sample and arrival: when a sample arrived.
    let mut firsts = Vec::with_capacity(speaker.len());
    let mut at = 0;
    for &(arrival_ms, samples) in speaker {
        firsts.push((at, arrival_ms));
        at += samples;
    }
    let arrival_of = |sample: usize| {
        let i = firsts.partition_point(|&(first, _)| first <= sample);
        firsts.get(i.saturating_sub(1)).map_or(origin, |f| f.1)
    };
    let pieces: Vec<&[i16]> = speaker_pcm.chunks_exact(window).collect();
    let loudest = pieces.iter().map(|p| rms(p)).fold(0.0, f64::max);
    for (n, piece) in pieces.iter().enumerate() {
        if rms(piece) < 0.1 * loudest {
            continue;
        }
        let sent_ms = arrival_of(n * window) - lag as f64 * GRID_MS - origin;
        let expected = (sent_ms / 1_000.0 * SPEAKER_RATE as f64) as i64;
        let best = (-(search as i64)..=search as i64)
            .filter_map(|shift| {
                let from = usize::try_from(expected + shift).ok()?;
                let there = sent_8k.get(from..from + window)?;
                Some((pearson(piece, there), there))
            })
            .fold(None, |best: Option<(f64, &[i16])>, (r, there)| match best {
                Some((b, _)) if b >= r => best,
                _ => Some((r, there)),
            });
        let Some((r, there)) = best else {
            continue;
        };
        correlations.push(r);
        for (heard_frame, sent_frame) in frames(piece).zip(frames(there)) {
            if rms(heard_frame) >= 0.1 * loudest {
                spectral_correlations
                    .push(pearson_f(&spectrum(heard_frame), &spectrum(sent_frame)));
            }
        }
        heard_energy += rms(piece).powi(2);
        sent_energy += rms(there).powi(2);
    }
    MouthToSpeaker {
        lag_ms: lag as f64 * GRID_MS,
        latencies_ms,
        correlations,
        spectral_correlations,
        level_db: 10.0 * (heard_energy / sent_energy.max(1.0)).log10(),
    }
}

/// 32 ms frames, 20 ms apart.
fn frames(pcm: &[i16]) -> impl Iterator<Item = &[i16]> {
    (0..pcm.len().saturating_sub(255))
        .step_by(160)
        .map(move |at| &pcm[at..at + 256])
}

/// The magnitude spectrum of a 256-sample frame at 8 kHz over 100–3 400 Hz (Hann window, a
/// plain DFT of the bins wanted).
fn spectrum(frame: &[i16]) -> Vec<f64> {
    let n = frame.len();
    let windowed: Vec<f64> = frame
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / n as f64).cos();
            f64::from(s) * hann
        })
        .collect();
    let lowest = (100 * n).div_ceil(SPEAKER_RATE);
    let highest = 3_400 * n / SPEAKER_RATE;
    (lowest..=highest)
        .map(|bin| {
            let (mut re, mut im) = (0.0, 0.0);
            for (k, x) in windowed.iter().enumerate() {
                let angle = 2.0 * std::f64::consts::PI * (bin * k) as f64 / n as f64;
                re += x * angle.cos();
                im -= x * angle.sin();
            }
            (re * re + im * im).sqrt()
        })
        .collect()
}

/// Sums of squares per 10 ms bin.
struct Loudness {
    energy: Vec<f64>,
    count: Vec<usize>,
}

impl Loudness {
    fn new(bins: usize) -> Loudness {
        Loudness {
            energy: vec![0.0; bins],
            count: vec![0; bins],
        }
    }

    fn add(&mut self, bin: f64, pcm: &[i16]) {
        if bin < 0.0 || bin as usize >= self.energy.len() {
            return;
        }
        let b = bin as usize;
        self.energy[b] += pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        self.count[b] += pcm.len();
    }

    fn rms(&self) -> Vec<f64> {
        self.energy
            .iter()
            .zip(&self.count)
            .map(|(&e, &n)| if n == 0 { 0.0 } else { (e / n as f64).sqrt() })
            .collect()
    }
}

/// The lag (in bins, 0..=`most`) at which `b` follows `a` most alike.
fn best_lag(a: &[f64], b: &[f64], most: usize) -> usize {
    (0..=most)
        .map(|lag| {
            let n = a.len().min(b.len().saturating_sub(lag));
            (lag, pearson_f(&a[..n], &b[lag..lag + n]))
        })
        .fold(
            (0, f64::MIN),
            |best, (lag, r)| if r > best.1 { (lag, r) } else { best },
        )
        .0
}

/// Bins where a syllable starts: loud (a third of the loudest) after at least 30 ms of quiet
/// (a tenth) in the 100 ms before — the rise between may take a bin or two.
fn onsets(loudness: &[f64]) -> Vec<usize> {
    let top = max(loudness);
    (1..loudness.len())
        .filter(|&i| {
            let rises = loudness[i] > 0.3 * top && loudness[i - 1] <= 0.3 * top;
            let before = &loudness[i.saturating_sub(10)..i];
            rises && before.windows(3).any(|w| w.iter().all(|&x| x < 0.1 * top))
        })
        .collect()
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

fn rms(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
}

fn pearson(a: &[i16], b: &[i16]) -> f64 {
    let a: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
    let b: Vec<f64> = b.iter().map(|&x| f64::from(x)).collect();
    pearson_f(&a, &b)
}

fn pearson_f(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n < 2.0 {
        return f64::MIN;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    if aa == 0.0 || bb == 0.0 {
        return f64::MIN;
    }
    ab / (aa * bb).sqrt()
}

/// A multiple of 8 kHz (48 kHz: Chromium's microphone) → 8 kHz: a 3.4 kHz windowed-sinc
/// low-pass (Hann, 121 taps), then every `rate_hz / 8 000`th sample.
fn to_8k(pcm: &[i16], rate_hz: u32) -> Vec<i16> {
    const TAPS: usize = 121;
    let step = (rate_hz as usize / SPEAKER_RATE).max(1);
    let cutoff = 3_400.0 / f64::from(rate_hz);
    let taps: Vec<f64> = (0..TAPS)
        .map(|k| {
            let m = k as f64 - (TAPS - 1) as f64 / 2.0;
            let sinc = if m == 0.0 {
                2.0 * cutoff
            } else {
                (2.0 * std::f64::consts::PI * cutoff * m).sin() / (std::f64::consts::PI * m)
            };
            let hann =
                0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / (TAPS - 1) as f64).cos();
            sinc * hann
        })
        .collect();
    (0..pcm.len() / step)
        .map(|i| {
            let centre = i * step;
            let sum: f64 = taps
                .iter()
                .enumerate()
                .filter_map(|(k, t)| {
                    let at = (centre + k).checked_sub(TAPS / 2)?;
                    pcm.get(at).map(|&s| t * f64::from(s))
                })
                .sum();
            sum.clamp(-32_768.0, 32_767.0) as i16
        })
        .collect()
}
