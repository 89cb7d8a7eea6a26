//! The live view in real Chromium (Debian `chromium`, npm `playwright-core`; `.ci/run` installs
//! both): `lockstep demo` serves two simulated cameras, `web/tests/live_view.mjs` opens the UI and
//! checks that every camera plays (frames decoded, audio energy, no concealment on the clean one)
//! and that the page's own measurement of rendered flash vs played beep is within ±80 ms (its
//! median, and most events: a moment's stall of a busy machine is not a sync failure).
//! The same page with lockstep's own player (`web/tests/player.mjs`) is measured on what it draws
//! and plays, also with its main thread blocked 200 ms every second, and fed a bad stream
//! (`web/tests/player_faults.mjs`).
//! Then the demo's push source is fed by `examples/push_avatar.py` (`web/tests/avatar.mjs`: the
//! avatar plays in the UI with a moving mouth and sound), and a page publishes a synthetic stream
//! over WHIP
//! (`web/tests/whip_publish.mjs`) and plays lockstep's re-served copy; last, a page of another
//! origin tries to read, connect and publish, and a rebound host name to read
//! (`web/tests/foreign_origin.mjs`). Screenshots go to `target/artifacts/`.
//! Separately, a server with users: the login page, a camera-scoped viewer's session, what it
//! may not do, and logout (`web/tests/login.mjs`).

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{add_user, one_at_a_time, run_node, tempdir, try_node, Server};

/// The example avatar's process, stopped with the test.
struct Avatar(std::process::Child);

impl Drop for Avatar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_web_ui_plays_every_camera_in_sync_in_chromium() {
    let _turn = one_at_a_time();
    let root = repo_root();
    let tests = root.join("web/tests");
    assert!(
        tests.join("node_modules/playwright-core").is_dir(),
        "run `npm ci --prefix web/tests` (and install Debian's chromium) first: the browser \
         test drives real Chromium"
    );
    // The demo has no users: its pages log in with the run's token, as a newcomer's browser
    // does with the URL the demo prints.
    let (server, login) = Server::start_with_login(&["demo", "--listen", "127.0.0.1:0"]);
    let artifacts = root.join("target/artifacts");
    let artifacts_arg = artifacts.to_string_lossy().into_owned();
    let base = format!("{}/", server.base);
    // The cameras first, on two unloaded cores (their rendered lip sync is bounded at ±80 ms:
    // Chromium's own player wanders by tens of ms from run to run; see live_view.mjs);
    // the demo's push source waits for a producer meanwhile.
    // A stall of the machine mid-window (two cores, Chromium decoding two cameras) once threw a
    // window's offsets by 400 ms while the other camera stayed within 16 ms; a broken stream
    // fails every window. So a failed window gets one more.
    let live_view = tests.join("live_view.mjs");
    let live_args = [base.as_str(), artifacts_arg.as_str(), "15", "15"];
    let result = try_node(&live_view, &login, &live_args).unwrap_or_else(|first| {
        eprintln!("first window failed, measuring once more:\n{first:#}");
        run_node(&live_view, &login, &live_args)
    });
    let cameras = result["cameras"].as_object().expect("cameras");
    assert_eq!(cameras.len(), 2, "{result:#}");
    for (name, camera) in cameras {
        let offset = camera["abs_p50_ms"].as_f64().expect("an offset");
        assert!(offset <= 80.0, "{name}: {offset} ms");
    }
    assert!(artifacts.join("live-view.png").is_file());

    // lockstep's own player on the drifting camera (web/tests/player.mjs): pictures drawn
    // against the sound the worklet plays, within ±25 ms (the release figures are in
    // bench/RESULTS.md), and sound that does not stop while the page's main thread is blocked.
    let result = run_node(
        &tests.join("player.mjs"),
        &login,
        &[&base, &artifacts_arg, "20", "demo-drifting"],
    );
    let pairs = result["steady"]["offsets_ms"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(pairs >= 12, "{result:#}");
    assert!(
        result["heavy_ui"]["underruns"].as_u64() <= Some(1),
        "{result:#}"
    );
    assert_eq!(result["steady"]["player"]["clock"], "audio", "{result:#}");

    // The player against a bad stream (web/tests/player_faults.mjs, through a proxy that
    // rewrites one camera's media socket): truncated and unknown frame messages, a header that
    // is not JSON or names a codec this browser lacks, a dropped connection — each said in the
    // card, reconnected with a growing backoff; the other camera undisturbed.
    let result = run_node(
        &tests.join("player_faults.mjs"),
        &login,
        &[&base, &artifacts_arg, "demo-clean", "demo-drifting"],
    );
    assert_eq!(
        result["faults"].as_array().map(Vec::len),
        Some(5),
        "{result:#}"
    );
    assert_eq!(result["other_camera"]["connects"], 0, "{result:#}");

    // The example avatar (numpy + websockets; `.ci/run` installs them) on the push source.
    let push_url = format!(
        "{}/api/push/avatar",
        server.base.replace("http://", "ws://")
    );
    let avatar_process = Avatar(
        Command::new("python3")
            .arg(root.join("examples/push_avatar.py"))
            // Small, as a debug server, numpy and Chromium share two cores: at 512² 30 fps
            // the push session fell behind (411 of 428 frames dropped, 9 s of audio late) on
            // both this build and the last landed one.
            .args([push_url.as_str(), "--quiet", "--duration", "120"])
            .args(["--size", "256", "--fps", "15"])
            .env(
                "LOCKSTEP_TOKEN",
                server.token.as_deref().expect("the run's token"),
            )
            .spawn()
            .expect("python3 runs examples/push_avatar.py"),
    );
    server.wait_json("/api/cameras/avatar", 30, |c| c["state"] == "live");
    let result = run_node(
        &tests.join("avatar.mjs"),
        &login,
        &[&base, "avatar", &artifacts_arg],
    );
    assert!(
        result["avatar"]["audio_energy"].as_f64() > Some(0.0),
        "{result:#}"
    );

    // WHIP from a real browser: the example leaves the push source to a page that publishes a
    // synthetic stream; lockstep re-serves it and the page plays it back.
    drop(avatar_process);
    server.wait_json("/api/cameras/avatar", 30, |c| c["state"] == "waiting");
    let result = run_node(
        &tests.join("whip_publish.mjs"),
        &login,
        &[&base, "avatar", &artifacts_arg],
    );
    assert_eq!(result["codecs"]["video"], "h264", "{result:#}");
    assert_eq!(result["after_stop"], "waiting", "{result:#}");

    // A page of another origin can use nothing, a rebound host name is refused, and the
    // server's own page still works (web/tests/foreign_origin.mjs says how).
    let result = run_node(
        &tests.join("foreign_origin.mjs"),
        &login,
        &[&base, "avatar"],
    );
    for attempt in ["read", "socket", "whip"] {
        assert_eq!(
            result["attack"][attempt], "refused",
            "{attempt}: {result:#}"
        );
    }
    assert_eq!(result["rebound_status"], 403, "{result:#}");
    let state = server.wait_json("/api/cameras/avatar", 5, |_| true);
    assert_eq!(
        state["state"], "waiting",
        "the push slot was taken: {state}"
    );
}

#[test]
fn a_viewer_logs_in_sees_their_cameras_and_logs_out_in_chromium() {
    let _turn = one_at_a_time();
    let dir = tempdir::Dir::new();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"on\"\n[storage]\ndir = '{}'\n\
         [[push]]\nname = \"door\"\n[[push]]\nname = \"yard\"\n",
        dir.path().join("data").display()
    );
    let path = dir.path().join("lockstep.toml");
    std::fs::write(&path, &config).expect("config written");
    add_user(
        &path,
        "neighbour",
        &["--role", "viewer", "--cameras", "door"],
        "a long passphrase",
    );
    let server = Server::with_config_in(&dir, &config);
    let base = format!("{}/", server.base);
    let result = run_node(
        &repo_root().join("web/tests/login.mjs"),
        "",
        &[&base, "neighbour", "a long passphrase", "door"],
    );
    assert!(
        result["wrong_password"]
            .as_str()
            .is_some_and(|m| m.contains("wrong name or password")),
        "{result:#}"
    );
    assert_eq!(result["cameras"], serde_json::json!(["door"]), "{result:#}");
    assert_eq!(result["refused"]["export"][0], 403, "{result:#}");
    assert_eq!(result["refused"]["talk"][0], 403, "{result:#}");
    assert_eq!(result["after_logout"], 401, "{result:#}");
    assert_eq!(
        result["console_errors"],
        serde_json::json!([]),
        "{result:#}"
    );
}

/// An admin adds a camera from the UI by its URL and login, watches it go live, and removes it
/// from its card; the config file ends as it began.
#[test]
fn an_admin_adds_and_removes_a_camera_in_chromium() {
    let _turn = one_at_a_time();
    let camera = common::Camera::start(&[]);
    let dir = tempdir::Dir::new();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"on\"\n[storage]\ndir = '{}'\n\n\
         # Cameras are added from the UI.\n",
        dir.path().join("data").display()
    );
    let path = dir.path().join("lockstep.toml");
    std::fs::write(&path, &config).expect("config written");
    add_user(
        &path,
        "owner",
        &["--role", "admin"],
        "the owner's passphrase",
    );
    let server = Server::with_config_in(&dir, &config);
    let base = format!("{}/", server.base);
    let result = run_node(
        &repo_root().join("web/tests/add_camera.mjs"),
        "",
        &[
            &base,
            "owner",
            "the owner's passphrase",
            "porch",
            &camera.url,
        ],
    );
    assert_eq!(result["live"], true, "{result:#}");
    assert_eq!(result["removed"], true, "{result:#}");
    assert_eq!(
        result["console_errors"],
        serde_json::json!([]),
        "{result:#}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("config read"),
        config,
        "the removal undid the addition"
    );
}

/// Sixteen sources on one page: the wall fits, a waiting source's line stays readable, and a
/// card opens large and closes.
#[test]
fn sixteen_sources_fit_the_wall_and_a_card_opens_large_in_chromium() {
    let _turn = one_at_a_time();
    let mut config = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    for n in 1..=16 {
        config.push_str(&format!("[[push]]\nname = \"door-{n:02}\"\n"));
    }
    let (server, _dir) = Server::with_config(&config);
    let result = run_node(
        &repo_root().join("web/tests/grid.mjs"),
        "",
        &[&format!("{}/", server.base), "16"],
    );
    assert_eq!(result["wall"]["many"], true, "{result:#}");
    assert!(
        result["wall"]["waiting_line"]
            .as_str()
            .is_some_and(|l| l.contains("waiting for a producer")),
        "{result:#}"
    );
    assert_eq!(
        result["console_errors"],
        serde_json::json!([]),
        "{result:#}"
    );
}

/// The player's audio output on a simulated clock, in Node without a browser
/// (`web/tests/audio_out_steering.mjs`): the delay a 200 ms stall of its reader added is played
/// off within seconds, the room a late packet made is kept while the packet counts, and the
/// device's first take at the start does not raise the margin.
#[test]
fn the_players_audio_gives_back_a_stalls_delay_and_keeps_a_late_packets_room() {
    let result = run_node(
        &repo_root().join("web/tests/audio_out_steering.mjs"),
        "",
        &[],
    );
    let stall = &result["stall"];
    let given_back =
        stall["after_stall_ms"].as_f64().unwrap() - stall["after_8s_ms"].as_f64().unwrap();
    assert!(given_back > 150.0, "{result:#}");
}
