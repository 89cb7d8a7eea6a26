//! The live view in real Chromium (Debian `chromium`, npm `playwright-core`; `.ci/run` installs
//! both): `lockstep demo` serves two simulated cameras, `web/tests/live_view.mjs` opens the UI and
//! checks that every camera plays (frames decoded, audio energy, no concealment on the clean one)
//! and that the page's own measurement of rendered flash vs played beep is within ±40 ms (its
//! median, and most events: a moment's stall of a busy machine is not a sync failure).
//! Screenshots go to `target/artifacts/`.

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::Server;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_web_ui_plays_every_camera_in_sync_in_chromium() {
    let root = repo_root();
    let tests = root.join("web/tests");
    assert!(
        tests.join("node_modules/playwright-core").is_dir(),
        "run `npm ci --prefix web/tests` (and install Debian's chromium) first: the browser \
         test drives real Chromium"
    );
    let server = Server::start(&["demo", "--listen", "127.0.0.1:0"]);
    let artifacts = root.join("target/artifacts");
    let out = Command::new("node")
        .arg(tests.join("live_view.mjs"))
        .arg(format!("{}/", server.base))
        .arg(&artifacts)
        .args(["15", "15"])
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "live_view.mjs printed no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(out.status.success() && result["ok"] == true, "{result:#}");
    let cameras = result["cameras"].as_object().expect("cameras");
    assert_eq!(cameras.len(), 2, "{result:#}");
    for (name, camera) in cameras {
        let offset = camera["abs_p50_ms"].as_f64().expect("an offset");
        assert!(offset <= 40.0, "{name}: {offset} ms");
    }
    assert!(artifacts.join("live-view.png").is_file());
}
