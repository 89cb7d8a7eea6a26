//! Cameras with a speaker, for the talk tests of this crate and the server's: GStreamer's ONVIF
//! server (`onvif_camera.py` beside this file) and a stand-in for Hikvision's ISAPI two-way
//! audio (`isapi_camera.py`). What their speaker was handed, and when.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One buffer the camera's speaker was handed.
#[derive(Debug, Clone, Copy)]
pub struct SpeakerBuffer {
    /// When it arrived (Unix time, ms).
    pub unix_ms: f64,
    pub samples: usize,
    /// The largest |sample| (16-bit).
    pub peak: i32,
}

#[derive(Debug, Default)]
struct Heard {
    speaker: Vec<SpeakerBuffer>,
    teardowns: usize,
    /// Requests the camera refused, with its reason.
    refusals: Vec<String>,
}

/// The camera process, killed on drop.
pub struct SpeakerCamera {
    child: Child,
    /// `rtsp://127.0.0.1:PORT/cam` (ONVIF) or `http://127.0.0.1:PORT` (ISAPI), without
    /// credentials.
    pub url: String,
    heard: Arc<Mutex<Heard>>,
}

impl SpeakerCamera {
    /// GStreamer's ONVIF camera, asking for `admin` / `password` with Digest.
    pub fn onvif(password: &str) -> SpeakerCamera {
        SpeakerCamera::start(
            "onvif_camera.py",
            &["--user", "admin", "--password", password],
        )
    }

    /// The ONVIF camera with a speaker that takes G.726-32 (RFC 3551 packing; ffmpeg's
    /// decoder, as GStreamer's `avdec_g726`).
    pub fn onvif_g726(password: &str) -> SpeakerCamera {
        SpeakerCamera::start(
            "onvif_camera.py",
            &[
                "--user",
                "admin",
                "--password",
                password,
                "--speaker-codec",
                "g726",
            ],
        )
    }

    /// The ONVIF camera, its speaker's samples also appended to `record` (16-bit LE, 8 kHz).
    pub fn onvif_recording(password: &str, record: &std::path::Path) -> SpeakerCamera {
        let record = record.to_str().expect("a UTF-8 path");
        SpeakerCamera::start(
            "onvif_camera.py",
            &[
                "--user",
                "admin",
                "--password",
                password,
                "--record",
                record,
            ],
        )
    }

    /// The ISAPI stand-in, asking for `admin` / `password` with Digest, its speaker taking
    /// `codec` (`G.711ulaw`, `G.711alaw`, or what it should refuse to be sent: `G.726`).
    pub fn isapi(password: &str, codec: &str) -> SpeakerCamera {
        SpeakerCamera::start(
            "isapi_camera.py",
            &["--user", "admin", "--password", password, "--codec", codec],
        )
    }

    fn start(script: &str, args: &[&str]) -> SpeakerCamera {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script = format!(
            "{}/../rtsp/tests/peers/{script}",
            env!("CARGO_MANIFEST_DIR")
        );
        // Debian's python3 has the GStreamer bindings (python3-gi), whatever is first on PATH.
        let mut child = Command::new("/usr/bin/python3")
            .args([&script, "--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3 runs");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let url = first
            .strip_prefix("ready ")
            .unwrap_or_else(|| {
                panic!(
                    "{script} did not start ({first:?}): .ci/run installs python3-gi, \
                     gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins"
                )
            })
            .to_owned();
        let heard = Arc::new(Mutex::new(Heard::default()));
        let sink = heard.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut heard = sink.lock().unwrap_or_else(PoisonError::into_inner);
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields.as_slice() {
                    ["speaker", unix_ms, samples, peak] => heard.speaker.push(SpeakerBuffer {
                        unix_ms: unix_ms.parse().unwrap_or(0.0),
                        samples: samples.parse().unwrap_or(0),
                        peak: peak.parse().unwrap_or(0),
                    }),
                    ["teardown"] => heard.teardowns += 1,
                    ["refused", ..] => heard.refusals.push(line.clone()),
                    _ => {}
                }
            }
        });
        SpeakerCamera { child, url, heard }
    }

    /// The URL with `admin:PASSWORD@`.
    pub fn url_with(&self, password: &str) -> String {
        self.url
            .replacen("://", &format!("://admin:{password}@"), 1)
    }

    /// What the speaker was handed so far.
    pub fn speaker(&self) -> Vec<SpeakerBuffer> {
        self.lock().speaker.clone()
    }

    pub fn teardowns(&self) -> usize {
        self.lock().teardowns
    }

    /// The requests it refused ("refused METHOD PATH: WHY").
    pub fn refusals(&self) -> Vec<String> {
        self.lock().refusals.clone()
    }

    /// Waits up to `limit` for `done` to hold of what was heard.
    pub fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&[SpeakerBuffer], usize) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            {
                let heard = self.lock();
                if done(&heard.speaker, heard.teardowns) {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.heard.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for SpeakerCamera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
