//! Echo on a talking camera, over time: the simulator's microphone hears its speaker
//! `--echo-delay-ms` later, 6 dB down, beside its own beep (or, with `NEAR=voice`, a voice at
//! the camera: double talk all along); a str0m talker speaks a voice stand-in for 14 s through
//! `lockstep serve` while a WHEP viewer records the camera's audio. Per loop delay and `echo`
//! mode: the echo the viewer hears per second against `echo = "off"` (away from the beeps, as
//! the talk test measures it), the second from which it stays 25 dB down, the camera's own
//! sound (beep peak) against `off`, and the server's CPU while talking. `aec, again` is a second
//! talk 62 s after the first: the canceller was dropped after a minute of silence and starts
//! afresh, but with the loop the first talk measured.
//!
//!   cargo bench -p lockstep --bench talk_echo -- [DELAYS_MS...]     (default 120 300 600)

use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/talk_rig/mod.rs"]
mod talk_rig;

const TALK_SECS: u32 = 14;

struct Run {
    per_second: Vec<Option<f64>>,
    beep: f64,
    cpu_percent: f64,
}

/// A talk of `TALK_SECS` (with `again`, the second of two, 62 s apart) and what it did.
fn run(runtime: &tokio::runtime::Runtime, delay_ms: &str, echo: &str, again: bool) -> Run {
    let mut args = vec!["--echo-delay-ms", delay_ms, "--echo-gain-db", "-6"];
    if std::env::var("NEAR").as_deref() == Ok("voice") {
        args.push("--near-voice");
    }
    let camera = common::Camera::start(&args);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[camera]]\nname = \"door\"\nurl = \"{}\"\n\
         record = \"off\"\ntalkback = \"onvif\"\necho = \"{echo}\"\n",
        camera.url
    );
    let (server, _dir) = common::Server::with_config(&config);
    server.wait_json("/api/cameras/door", 20, |c| c["state"] == "live");
    if again {
        runtime.block_on(talk_rig::talk_and_listen(&server.base, TALK_SECS));
        std::thread::sleep(Duration::from_secs(62));
    }
    let ticks = common::cpu_ticks(server.pid());
    let started = Instant::now();
    let heard = runtime.block_on(talk_rig::talk_and_listen(&server.base, TALK_SECS));
    let cpu_percent =
        (common::cpu_ticks(server.pid()) - ticks) as f64 / 100.0 / started.elapsed().as_secs_f64()
            * 100.0;
    let per_second = (0..u64::from(TALK_SECS))
        .map(|s| heard.echo_power(Duration::from_secs(s), Duration::from_secs(s + 1)))
        .collect();
    let beep = heard.peak(
        talk_rig::BEEP_HZ,
        Duration::from_secs(u64::from(TALK_SECS) - 4),
        Duration::from_secs(u64::from(TALK_SECS)),
    );
    Run {
        per_second,
        beep,
        cpu_percent,
    }
}

fn db(a: f64, b: f64) -> f64 {
    10.0 * (a / b.max(1e-9)).log10()
}

fn main() {
    let delays: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.parse::<u32>().is_ok())
        .collect();
    let delays = if delays.is_empty() {
        vec!["120".into(), "300".into(), "600".into()]
    } else {
        delays
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for delay in &delays {
        let off = run(&runtime, delay, "off", false);
        println!(
            "loop {delay} ms (+ the simulator's 100 ms playout buffer); off: server CPU {:.1} %",
            off.cpu_percent
        );
        for (mode, again) in [("aec", false), ("aec, again", true), ("half-duplex", false)] {
            let with = run(
                &runtime,
                delay,
                mode.split(',').next().unwrap_or(mode),
                again,
            );
            let erle: Vec<String> = off
                .per_second
                .iter()
                .zip(&with.per_second)
                .map(|(o, w)| match (o, w) {
                    (Some(o), Some(w)) => format!("{:.0}", db(*o, *w)),
                    _ => "–".into(),
                })
                .collect();
            let settled = off
                .per_second
                .iter()
                .zip(&with.per_second)
                .map(|(o, w)| matches!((o, w), (Some(o), Some(w)) if db(*o, *w) >= 25.0))
                .collect::<Vec<_>>();
            let from = (0..settled.len()).find(|&s| settled[s..].iter().all(|&ok| ok));
            println!(
                "  {mode}: echo removed per second (dB) [{}]; ≥ 25 dB from second {}; the \
                 camera's beep {:+.1} dB; server CPU {:.1} %",
                erle.join(" "),
                from.map_or("never".into(), |s| s.to_string()),
                db(with.beep, off.beep),
                with.cpu_percent
            );
        }
    }
}
