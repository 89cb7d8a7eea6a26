//! A talker and a listener around one camera, for the talk tests and the echo bench: a str0m
//! WHIP talker speaks a voice stand-in through `/api/talk/door` while a WHEP viewer of the same
//! camera records what it hears.

#![allow(dead_code)]

pub mod mouth_to_speaker;

use std::time::{Duration, Instant};

use lockstep_opus::{Application, OpusDecoder, OpusEncoder};
use lockstep_webrtc::whep_client::{ClientEvent, Track, WhepClient, WhepClientError};
use lockstep_webrtc::whip_client::WhipClient;

/// A WHIP session, connected.
pub async fn connected(endpoint: &str) -> Result<WhipClient, WhepClientError> {
    let mut client = WhipClient::connect(endpoint).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.ready() {
        assert!(Instant::now() < deadline, "no WebRTC connection after 10 s");
        client
            .pump(Instant::now() + Duration::from_millis(20))
            .await?;
    }
    Ok(client)
}

/// A voice stand-in, 20 ms at 48 kHz per call: syllables of random length (60–260 ms) and
/// pauses; each syllable voiced (a pitch gliding between 100 and 200 Hz with its harmonics, as
/// intonation does) with breath noise over it. Real speech is neither one pitch nor periodic;
/// a steady pitch or a steady syllable rhythm gives an echo canceller (and any delay estimate)
/// many equally good delays.
pub struct Voice {
    seed: u64,
    left_in_syllable: u32,
    loud: bool,
    pitch_hz: f64,
    glide_hz_per_s: f64,
    phase: f64,
}

impl Voice {
    pub fn new() -> Voice {
        Voice {
            seed: 0x5eed,
            left_in_syllable: 0,
            loud: false,
            pitch_hz: 140.0,
            glide_hz_per_s: 0.0,
            phase: 0.0,
        }
    }

    fn next_random(&mut self) -> u64 {
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.seed >> 33
    }

    pub fn next_20ms(&mut self) -> Vec<i16> {
        (0..960)
            .map(|_| {
                if self.left_in_syllable == 0 {
                    self.left_in_syllable = 48 * (60 + (self.next_random() % 200) as u32);
                    self.loud = self.next_random() % 3 != 0;
                    self.pitch_hz = 100.0 + (self.next_random() % 100) as f64;
                    self.glide_hz_per_s = (self.next_random() % 400) as f64 - 200.0;
                }
                self.left_in_syllable -= 1;
                let breath = (self.next_random() % 2_000) as f64 - 1_000.0;
                if !self.loud {
                    return 0;
                }
                self.pitch_hz = (self.pitch_hz + self.glide_hz_per_s / 48_000.0).clamp(90.0, 220.0);
                self.phase += self.pitch_hz / 48_000.0;
                let voiced: f64 = (1..=20)
                    .map(|k| {
                        (2.0 * std::f64::consts::PI * f64::from(k) * self.phase).sin()
                            / f64::from(k)
                    })
                    .sum();
                (3_000.0 * voiced + 2.0 * breath) as i16
            })
            .collect()
    }
}

/// The simulator's beep (the camera's own sound): a frame with this much 1 kHz power (per
/// sample²) holds it.
pub const BEEP_HZ: f64 = 1_000.0;
const BEEP_FRAME_POWER: f64 = 1e6;
const BEEP_MARGIN: Duration = Duration::from_millis(80);

/// What a viewer heard while the talker spoke: each decoded 20 ms with its arrival, and when
/// the talk started and ended.
pub struct Heard {
    pub frames: Vec<(Instant, Vec<i16>)>,
    pub talk_start: Instant,
    pub talk_end: Instant,
}

impl Heard {
    /// Mean energy per sample² of the frames heard in `[from, to)` after the talk started, away
    /// from the camera's beeps (a frame within `BEEP_MARGIN` of one that holds a beep is left
    /// out: a beep's edge in a frame is louder than a cancelled echo): what the camera's
    /// microphone passed of the talker's echo.
    pub fn echo_power(&self, from: Duration, to: Duration) -> Option<f64> {
        let beeps: Vec<Instant> = self
            .frames
            .iter()
            .filter(|(_, pcm)| tone_power(pcm, 48_000.0, BEEP_HZ) > BEEP_FRAME_POWER)
            .map(|(t, _)| *t)
            .collect();
        let near_beep = |t: Instant| beeps.iter().any(|&b| t.max(b) - t.min(b) <= BEEP_MARGIN);
        let frames: Vec<f64> = self
            .frames
            .iter()
            .filter(|(t, _)| *t >= self.talk_start + from && *t < self.talk_start + to)
            .filter(|(t, _)| !near_beep(*t))
            .map(|(_, pcm)| {
                pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64
            })
            .collect();
        (!frames.is_empty()).then(|| frames.iter().sum::<f64>() / frames.len() as f64)
    }

    /// The loudest frame of `frequency_hz` in `[from, to)` after the talk started.
    pub fn peak(&self, frequency_hz: f64, from: Duration, to: Duration) -> f64 {
        self.frames
            .iter()
            .filter(|(t, _)| *t >= self.talk_start + from && *t < self.talk_start + to)
            .map(|(_, pcm)| tone_power(pcm, 48_000.0, frequency_hz))
            .fold(0.0, f64::max)
    }
}

/// Power of `frequency_hz` in `samples` at `rate_hz` (Goertzel), per sample².
pub fn tone_power(samples: &[i16], rate_hz: f64, frequency_hz: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency_hz / rate_hz).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = f64::from(x) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / (samples.len() as f64).powi(2)
}

/// Talks `talk_secs` of the voice to camera `door` of the server at `base` while a viewer of it
/// listens (and 2 s more).
pub async fn talk_and_listen(base: &str, talk_secs: u32) -> Heard {
    let mut viewer = WhepClient::connect(&format!("{base}/api/whep/door"))
        .await
        .expect("viewer");
    let listening = tokio::spawn(async move {
        let mut decoder = OpusDecoder::new(48_000, 1).expect("decoder");
        let mut frames = Vec::new();
        let end = Instant::now() + Duration::from_secs(u64::from(talk_secs) + 4);
        while let Ok(Some(event)) = viewer.next_event(end).await {
            if let ClientEvent::Media {
                track: Track::Audio,
                received,
                data,
                ..
            } = event
            {
                if let Ok(pcm) = decoder.decode(Some(&data)) {
                    frames.push((received, pcm));
                }
            }
        }
        frames
    });
    let mut talker = connected(&format!("{base}/api/talk/door"))
        .await
        .expect("talk session");
    let mut encoder = OpusEncoder::new(48_000, 1, Application::Voip).expect("encoder");
    let mut voice = Voice::new();
    let talk_start = Instant::now();
    for n in 0..talk_secs * 50 {
        let at = talk_start + Duration::from_millis(20 * u64::from(n));
        talker.pump(at).await.expect("connection");
        let packet = encoder.encode(&voice.next_20ms()).expect("encoded");
        talker
            .write(Track::Audio, u64::from(n) * 960, at, packet)
            .expect("written");
    }
    let talk_end = Instant::now();
    talker.close().await.expect("DELETE");
    Heard {
        frames: listening.await.expect("viewer"),
        talk_start,
        talk_end,
    }
}
