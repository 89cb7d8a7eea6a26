//! One camera, many WHEP viewers: the server's CPU and RSS, and whether every viewer gets every
//! frame. A `sim-camera --replay` (640x360, 30 fps, PCMA) feeds `lockstep serve`; N str0m viewers
//! in this process (the same client `lockstep measure` uses) receive for 20 s after a warm-up.
//! The viewers' own cost (DTLS, SRTP, depacketizing) runs on the same machine and is not counted.
//!
//!   cargo bench -p lockstep --bench whep_viewers -- [COUNTS...]     (default 10 50 200)

use std::process::Child;
use std::time::{Duration, Instant};

use lockstep_webrtc::whep_client::{ClientEvent, Track, WhepClient};

const WARMUP: Duration = Duration::from_secs(8);
const WINDOW: Duration = Duration::from_secs(20);

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[path = "../tests/common/mod.rs"]
mod common;

fn spawn(args: &[&str]) -> (Process, String) {
    let (child, line) = common::spawn_lockstep(args);
    (Process(child), line.trim().to_owned())
}

#[derive(Debug, Default, Clone, Copy)]
struct Received {
    video_frames: u64,
    audio_packets: u64,
    gaps: u64,
    failed: bool,
}

async fn viewer(endpoint: String, start: Instant) -> Received {
    let mut got = Received::default();
    let Ok(mut client) = WhepClient::connect(&endpoint).await else {
        got.failed = true;
        return got;
    };
    let window_start = start + WARMUP;
    let end = window_start + WINDOW;
    loop {
        match client.next_event(end).await {
            Ok(Some(ClientEvent::Media {
                track,
                received,
                contiguous,
                ..
            })) if received >= window_start => {
                match track {
                    Track::Video => got.video_frames += 1,
                    Track::Audio => got.audio_packets += 1,
                }
                got.gaps += u64::from(!contiguous);
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                got.failed = true;
                break;
            }
        }
    }
    client.disconnect();
    got
}

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![10, 50, 200]
    } else {
        counts
    };
    let (_camera, camera_line) = spawn(&["sim-camera", "--listen", "127.0.0.1:0", "--replay"]);
    let url = camera_line
        .strip_prefix("sim-camera: serving ")
        .expect("the camera URL")
        .to_owned();
    let dir = std::env::temp_dir().join(format!("lockstep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("lockstep.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"off\"\n[[camera]]\nname = \"cam\"\nurl = \"{url}\"\nrecord = \"off\"\n"
        ),
    )
    .expect("config written");
    let (server, base) = spawn(&["serve", "--config", config.to_str().expect("utf-8")]);
    let pid = server.0.id();
    std::thread::sleep(Duration::from_secs(3));
    let endpoint = format!("{}api/whep/cam", base);
    let hz = 100.0; // CLK_TCK on Linux
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("| viewers | server CPU % of a core | per viewer | server RSS MiB | video fps per viewer (min / median) | audio pkt/s (median) | sequence gaps | failed |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in counts {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| runtime.spawn(viewer(endpoint.clone(), start)))
            .collect();
        std::thread::sleep(WARMUP);
        let ticks_before = common::cpu_ticks(pid);
        let measured = Instant::now();
        std::thread::sleep(WINDOW);
        let cpu =
            (common::cpu_ticks(pid) - ticks_before) as f64 / hz / measured.elapsed().as_secs_f64();
        let rss = common::rss_mib(pid);
        let mut results: Vec<Received> = tasks
            .into_iter()
            .map(|t| runtime.block_on(t).unwrap_or_default())
            .collect();
        let secs = WINDOW.as_secs_f64();
        results.sort_by_key(|r| r.video_frames);
        let fps_min = results
            .first()
            .map_or(0.0, |r| r.video_frames as f64 / secs);
        let fps_med = results[results.len() / 2].video_frames as f64 / secs;
        results.sort_by_key(|r| r.audio_packets);
        let audio_med = results[results.len() / 2].audio_packets as f64 / secs;
        let gaps: u64 = results.iter().map(|r| r.gaps).sum();
        let failed = results.iter().filter(|r| r.failed).count();
        println!(
            "| {n} | {:.1} | {:.2} | {rss:.0} | {fps_min:.1} / {fps_med:.1} | {audio_med:.1} | {gaps} | {failed} |",
            cpu * 100.0,
            cpu * 100.0 / n as f64
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let _ = std::fs::remove_dir_all(dir);
}
