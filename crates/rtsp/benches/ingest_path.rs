//! The camera ingest path measured end to end on loopback: sim-camera (−300 ppm audio clock,
//! 40 ms jitter; over UDP also 1 % loss and 2 % reordering) → lockstep's RTSP client (TCP
//! or UDP) → the production `Source`. Prints a Markdown row: audio-video offset on
//! the output timeline, capture → output latency (from the stripe's capture wallclock), and the
//! CPU of the ingest thread alone.
//!
//! `cargo bench -p lockstep-rtsp --bench ingest_path`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lockstep_media::PatternReader;
use lockstep_rtsp::ingest::{self, LocalClock, RtpTransport};
use lockstep_rtsp::sim_camera::{Impairments, SimCamera, SimCameraConfig};
use lockstep_sync::{LatencyProfile, SourceConfig, SourceEvent};

const SECONDS: u64 = 30;

/// CPU seconds (user + system) of the calling thread so far.
fn thread_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name in parentheses; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    println!(
        "| camera (640x360, 30 fps, PCMA, {SECONDS} s) | events | |A−V offset| p50 / p99 / \
         max (ms) | capture → output p50 / p99 (ms) | ingest CPU (% of a core) |"
    );
    println!("|---|---|---|---|---|");
    let jittery = Impairments {
        jitter: Duration::from_millis(40),
        ..Impairments::default()
    };
    let lossy = Impairments {
        loss: 0.01,
        reorder: 0.02,
        ..jittery
    };
    let rows = [
        ("TCP, clean link", RtpTransport::Tcp, Impairments::default()),
        (
            "TCP, −300 ppm audio, 40 ms jitter",
            RtpTransport::Tcp,
            jittery,
        ),
        ("UDP, clean link", RtpTransport::Udp, Impairments::default()),
        (
            "UDP, −300 ppm audio, 40 ms jitter, 1 % loss, 2 % reordered",
            RtpTransport::Udp,
            lossy,
        ),
    ];
    for (name, transport, impairments) in rows {
        row(name, transport, impairments);
    }
}

// A bench reads real clocks.
#[allow(clippy::disallowed_methods)]
fn row(name: &str, transport: RtpTransport, impairments: Impairments) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let camera = runtime
        .block_on(SimCamera::start(SimCameraConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            audio_clock_ppm: if impairments.is_none() { 0.0 } else { -300.0 },
            impairments,
            ..SimCameraConfig::default()
        }))
        .expect("camera");
    let url = camera.url();
    let clock = LocalClock::new();
    let origin_unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    // The ingest alone on its own thread, so its CPU can be read.
    let ingest_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let start = thread_cpu_secs();
        let mut outputs = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(SECONDS);
        let config = SourceConfig::new(LatencyProfile::Low);
        let played = rt.block_on(ingest::play_until(
            &url,
            transport,
            config,
            clock,
            until,
            |event| outputs.push(event),
        ));
        played.expect("the camera plays");
        (thread_cpu_secs() - start, outputs)
    });
    let (ingest_cpu, outputs) = ingest_thread.join().expect("ingest thread");
    camera.shutdown();

    let mut reader = PatternReader::new(8_000).expect("decoder");
    let mut latencies_ms = Vec::new();
    for o in &outputs {
        match o {
            SourceEvent::Video { out, frame, .. } => {
                let picture = reader.video(out.as_nanos() as f64 * 1e-9, frame);
                if let Some(capture) = picture.and_then(|p| p.stripe?.capture_unix_micros) {
                    let out_unix = origin_unix_nanos + out.as_nanos();
                    latencies_ms.push((out_unix - capture as i64 * 1_000) as f64 / 1e6);
                }
            }
            SourceEvent::Audio { out, chunk, .. } => {
                reader.audio_i16(out.as_nanos() as f64 * 1e-9, &chunk.0)
            }
            SourceEvent::Conceal { .. } | SourceEvent::Drained { .. } => {}
        }
    }
    let report = reader.report().expect("pattern found");
    let settled: Vec<f64> = report
        .events
        .iter()
        .filter(|e| e.flash_secs > 5.0)
        .map(|e| e.offset_ms.abs())
        .collect();
    let settled_latency: Vec<f64> = latencies_ms.iter().skip(150).copied().collect();
    println!(
        "| {name} | {} | {:.2} / {:.2} / {:.2} | {:.1} / {:.1} | {:.2} % |",
        settled.len(),
        percentile(settled.clone(), 0.5),
        percentile(settled.clone(), 0.99),
        percentile(settled, 1.0),
        percentile(settled_latency.clone(), 0.5),
        percentile(settled_latency, 0.99),
        ingest_cpu / SECONDS as f64 * 100.0,
    );
}
