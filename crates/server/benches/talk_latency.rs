//! Talk latency: from the instant a talker's packet is captured to the instant the camera's
//! speaker is handed it. A str0m WHIP talker (the client `push-sim --whip` uses) sends 20 ms
//! Opus packets, each written at its capture instant: a 100 ms 1 kHz burst every 500 ms,
//! silence between. `lockstep serve` relays it to GStreamer's ONVIF camera
//! (`crates/rtsp/tests/peers/onvif_camera.py`), whose speaker reports each buffer's arrival
//! (Python `time.time()` in GStreamer's streaming thread, after RTP depayloading and µ-law
//! decoding). Per burst: the first loud buffer's arrival − the burst's capture instant.
//! Instrument: both clocks are this machine's wall clock; the speaker's reports are per 20 ms
//! buffer, and the buffer of a burst's first packet is the one that holds its onset (bursts
//! start on packet boundaries), so the resolution is the arrival of that packet (±1 ms of
//! Python and pipe scheduling). Not included: a browser's capture and Opus encoding (Chromium:
//! a 10 ms capture buffer and a 20 ms frame), the camera's own playout buffer and loudspeaker.
//!
//!   cargo bench -p lockstep --bench talk_latency -- [SECONDS]     (default 30)

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lockstep_opus::{Application, OpusEncoder};
use lockstep_webrtc::whep_client::Track;
use lockstep_webrtc::whip_client::WhipClient;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../rtsp/tests/peers/speaker_camera.rs"]
mod speaker_camera;

const BURST_EVERY_PACKETS: u32 = 25;
const BURST_PACKETS: u32 = 5;

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
}

fn main() {
    let seconds: u32 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let camera = speaker_camera::SpeakerCamera::onvif("s3cret");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[camera]]\nname = \"door\"\nurl = \"{}\"\n\
         record = \"off\"\ntalkback = \"onvif\"\n",
        camera.url_with("s3cret")
    );
    let (server, _dir) = common::Server::with_config(&config);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ticks_before = common::cpu_ticks(server.pid());
    let started = Instant::now();
    let onsets = runtime.block_on(talk(&format!("{}/api/talk/door", server.base), seconds));
    let cpu_secs = (common::cpu_ticks(server.pid()) - ticks_before) as f64 / 100.0;
    let wall_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let speaker = camera.speaker();
    let mut latencies: Vec<f64> = onsets
        .iter()
        .filter_map(|&onset| {
            speaker
                .iter()
                .find(|b| b.peak > 2_000 && b.unix_ms >= onset - 5.0)
                .map(|b| b.unix_ms - onset)
                .filter(|&ms| ms < 450.0)
        })
        .collect();
    let first = latencies.first().copied();
    let heard = latencies.len();
    let mut steady = latencies.split_off(1.min(latencies.len()));
    steady.sort_by(f64::total_cmp);
    let at = |q: f64| steady[((steady.len() - 1) as f64 * q).round() as usize];
    println!(
        "talk latency, capture → camera speaker: {heard} of {} bursts heard; first burst (opens \
         the backchannel) {:.1} ms; then median {:.1} ms, p95 {:.1} ms, max {:.1} ms; server CPU \
         {:.2} % of one core while one talker talks",
        onsets.len(),
        first.unwrap_or(f64::NAN),
        at(0.5),
        at(0.95),
        at(1.0),
        cpu_secs / wall_secs * 100.0
    );
}

/// Talks for `seconds`; returns each burst's capture instant (Unix ms).
async fn talk(endpoint: &str, seconds: u32) -> Vec<f64> {
    let mut client = WhipClient::connect(endpoint).await.expect("talk session");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.ready() {
        assert!(Instant::now() < deadline, "no WebRTC connection");
        client
            .pump(Instant::now() + Duration::from_millis(20))
            .await
            .expect("connection");
    }
    let mut encoder = OpusEncoder::new(48_000, 1, Application::Voip).expect("encoder");
    let mut onsets = Vec::new();
    let start = Instant::now() + Duration::from_millis(20);
    for n in 0..seconds * 50 {
        let at = start + Duration::from_millis(20 * u64::from(n));
        client.pump(at).await.expect("connection");
        let loud = n % BURST_EVERY_PACKETS < BURST_PACKETS;
        if n % BURST_EVERY_PACKETS == 0 {
            onsets.push(unix_ms());
        }
        let pcm: Vec<i16> = (0..960u32)
            .map(|k| {
                if !loud {
                    return 0;
                }
                let t = f64::from(k) / 48_000.0;
                (12_000.0 * (2.0 * std::f64::consts::PI * 1_000.0 * t).sin()) as i16
            })
            .collect();
        let packet = encoder.encode(&pcm).expect("encoded");
        client
            .write(Track::Audio, u64::from(n) * 960, at, packet)
            .expect("written");
    }
    client.close().await.expect("closed");
    onsets
}
