//! A remote push producer in virtual time, through the production `ProducerClock` (its clock as
//! the timeline basis) and `PushAudio` (the audio clock): the producer's clock runs 200 ppm
//! fast, every message crosses 10–40 ms of jittery network (in order, as over TCP), and the
//! producer says what its clock reads once a second. Its voice beeps and its lips flash at the
//! same instant once a second, for an hour. Voice (where the beep starts playing) and lips (the
//! flash frame's output instant) stay together within ±2 ms, and their latency from capture
//! does not drift. With the hello's mapping alone, 200 ppm would carry both 720 ms early, past
//! the playout delay: the producer's media would all arrive late.

use lockstep_media::{PcmFormat, Placement, PushAudio, PushAudioEvent, SampleFormat, LIVE_RATE_HZ};
use lockstep_sync::{LatencyProfile, LocalInstant, ProducerClock};

const PRODUCER_PPM: f64 = 200.0;
const RATE_HZ: u32 = 24_000;
const CHUNK_MS: i64 = 20;

/// splitmix64.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

enum Message {
    Clock {
        producer_us: i64,
    },
    Audio {
        capture_us: i64,
        pcm: Vec<u8>,
    },
    /// A frame; `flash` marks the one captured on the second.
    Video {
        capture_us: i64,
        flash: Option<u64>,
    },
}

fn ticks_48k(at: LocalInstant) -> i64 {
    (i128::from(at.as_nanos()) * i128::from(LIVE_RATE_HZ) / 1_000_000_000) as i64
}

#[test]
fn a_remote_producer_200_ppm_off_stays_in_sync_for_an_hour() {
    let secs: i64 = 3_600;
    // The producer's clock: µs since its own boot, running fast. It makes its media on its own
    // clock's grid (as a TTS engine or a renderer does): chunk c is stamped c·20 ms, frame f
    // f/30 s, and each is sent when its clock reaches the stamp (plus 20 ms for a chunk to be
    // complete, 8 ms for a frame to render).
    const BOOT_US: i64 = 5_000_000_000;
    let true_nanos = |producer_us: i64| -> i64 {
        ((producer_us - BOOT_US) as f64 * 1e3 / (1.0 + PRODUCER_PPM * 1e-6)).round() as i64
    };
    let mut sends: Vec<(i64, Message)> = Vec::new();
    for s in 0..=secs {
        let clock_us = BOOT_US + s * 1_000_000;
        sends.push((
            true_nanos(clock_us),
            Message::Clock {
                producer_us: clock_us,
            },
        ));
    }
    let samples = (RATE_HZ as i64 * CHUNK_MS / 1_000) as usize;
    for c in 0..secs * 1_000 / CHUNK_MS {
        let stamp_us = BOOT_US + c * CHUNK_MS * 1_000;
        // The first 100 ms of every second beep (1 kHz), the rest is silence.
        let loud = (stamp_us - BOOT_US) % 1_000_000 < 100_000;
        let pcm: Vec<u8> = (0..samples)
            .flat_map(|i| {
                let t = i as f64 / f64::from(RATE_HZ);
                let v = if loud {
                    (8_000.0 * (2.0 * std::f64::consts::PI * 1_000.0 * t).sin()) as i16
                } else {
                    0
                };
                v.to_le_bytes()
            })
            .collect();
        let send = true_nanos(stamp_us + CHUNK_MS * 1_000);
        sends.push((
            send,
            Message::Audio {
                capture_us: stamp_us,
                pcm,
            },
        ));
    }
    for f in 0..secs * 30 {
        let stamp_us = BOOT_US + f * 1_000_000 / 30;
        let flash = (f % 30 == 0).then_some((f / 30) as u64);
        sends.push((
            true_nanos(stamp_us + 8_000),
            Message::Video {
                capture_us: stamp_us,
                flash,
            },
        ));
    }
    sends.sort_by_key(|(at, _)| *at);

    // The network: 10 ms floor, up to 30 ms of jitter, in order.
    let mut rng = Rng(7);
    let mut last_arrival = 0i64;
    let arrivals: Vec<(i64, Message)> = sends
        .into_iter()
        .map(|(at, m)| {
            let arrival = (at + 10_000_000 + (rng.unit() * 30e6) as i64).max(last_arrival);
            last_arrival = arrival;
            (arrival, m)
        })
        .collect();

    // The server: the hello's clock reading first, then every message at its arrival; the audio
    // clock releases a packet every 20 ms.
    // 30 ms of jitter on top of a 20 ms chunk: the profile for a remote producer (120 ms).
    let mut clock = ProducerClock::new(LatencyProfile::Balanced.fixed_playout_delay());
    let format = PcmFormat {
        rate_hz: RATE_HZ,
        channels: 1,
        sample: SampleFormat::S16le,
    };
    let mut audio: Option<PushAudio> = None;
    let mut voice = Vec::new();
    let mut lips = Vec::new();
    let mut packets = Vec::new();
    let mut next_release = 0i64;
    for (arrival, message) in arrivals {
        let now = LocalInstant::from_nanos(arrival);
        while let Some(a) = audio.as_mut().filter(|_| next_release <= arrival) {
            let released = a
                .release(
                    ticks_48k(LocalInstant::from_nanos(next_release)),
                    &mut packets,
                )
                .expect("encoder");
            for event in released {
                if let PushAudioEvent::SpeakingStarted { pts } = event {
                    voice.push(pts * 1_000_000_000 / i64::from(LIVE_RATE_HZ));
                }
            }
            packets.clear();
            next_release += 20_000_000;
        }
        match message {
            Message::Clock { producer_us } => {
                clock.handle_clock(now, producer_us);
                if audio.is_none() {
                    let origin = clock.output_time(producer_us).expect("known");
                    audio = Some(PushAudio::new(format, ticks_48k(origin)).expect("audio"));
                    next_release = origin.as_nanos() - 20_000_000;
                }
            }
            Message::Audio { capture_us, pcm } => {
                let due = clock.output_time(capture_us).expect("after the hello");
                let placed = Placement::At(ticks_48k(due));
                audio
                    .as_mut()
                    .expect("audio")
                    .push(placed, &pcm)
                    .expect("placed");
            }
            Message::Video { capture_us, flash } => {
                if let Some(k) = flash {
                    let due = clock.output_time(capture_us).expect("after the hello");
                    lips.push((k, due.as_nanos()));
                }
            }
        }
    }
    assert!(
        voice.len() as i64 >= secs - 2,
        "{} beeps heard",
        voice.len()
    );
    // Beep k starts at the producer's k s: its latency from that true instant, and the flash's.
    let latency =
        |k: u64, out: i64| (out - true_nanos(BOOT_US + k as i64 * 1_000_000)) as f64 / 1e6;
    let pairs: Vec<(u64, f64, f64)> = lips
        .iter()
        .filter_map(|&(k, lips_out)| {
            let voice_out = voice
                .iter()
                .find(|&&v| (v - lips_out).abs() < 200_000_000)?;
            Some((k, latency(k, *voice_out), latency(k, lips_out)))
        })
        .collect();
    assert!(
        pairs.len() as i64 >= secs - 2,
        "{} beeps matched",
        pairs.len()
    );
    for &(k, voice_ms, lips_ms) in &pairs {
        assert!(
            (voice_ms - lips_ms).abs() <= 2.0,
            "beep {k}: voice {voice_ms:.2} ms, lips {lips_ms:.2} ms after capture"
        );
    }
    // No drift: the latency of the first ten settled minutes is that of the last ten (with the
    // hello's mapping alone they would differ by 600 ms), and no beep strays from the hour's
    // median by more than the clock samples' noise.
    let settled: Vec<f64> = pairs.iter().filter(|p| p.0 >= 120).map(|p| p.2).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (early, late) = (mean(&settled[..600]), mean(&settled[settled.len() - 600..]));
    assert!(
        (early - late).abs() < 1.0,
        "latency {early:.2} ms early, {late:.2} ms late"
    );
    let mut sorted = settled.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    for (i, lips_ms) in settled.iter().enumerate() {
        assert!(
            (lips_ms - median).abs() <= 3.0,
            "beep {}: lips {lips_ms:.2} ms after capture, median {median:.2}",
            i + 120
        );
    }
    // The playout delay plus the network's floor and what a chunk takes to fill.
    assert!(
        (median - 140.0).abs() < 10.0,
        "median {median:.2} ms after capture"
    );
    let drift = clock.drift_ppm().expect("drift measured");
    assert!(
        (drift - PRODUCER_PPM).abs() < 20.0,
        "producer drift {drift:.1} ppm"
    );
}
