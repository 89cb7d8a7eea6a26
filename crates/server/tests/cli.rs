//! The binary's contract as a user meets it.

use std::process::Command;

fn lockstep(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("the lockstep binary runs")
}

#[test]
fn discover_says_what_it_needs() {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["discover", "--user", "admin", "--address", "127.0.0.1:9"])
        .env_remove("LOCKSTEP_ONVIF_PASSWORD")
        .output()
        .expect("the lockstep binary runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LOCKSTEP_ONVIF_PASSWORD"), "{stderr}");
    let out = lockstep(&["discover", "--timeout", "600"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("outside 0.2–60 s"), "{stderr}");
}

#[test]
fn help_lists_every_contract_subcommand() {
    let out = lockstep(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for name in ["demo", "serve", "sim-camera", "measure", "discover"] {
        assert!(help.contains(name), "{name} missing from --help");
    }
}

#[test]
fn a_bad_flag_is_a_clear_usage_error() {
    let out = lockstep(&["sim-camera", "--audio", "mp3"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mp3") && stderr.contains("pcma"),
        "{stderr}"
    );
}

#[test]
fn sim_camera_rejects_bad_values_with_the_option_name() {
    for (args, needle) in [
        (&["sim-camera", "--size", "641x360"][..], "--size"),
        (&["sim-camera", "--loss", "2"], "--loss"),
        (&["sim-camera", "--user", "admin"], "--password"),
        (
            &["sim-camera", "--audio-offset-ms", "-5"],
            "--audio-offset-ms",
        ),
    ] {
        let out = lockstep(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn serve_checks_the_config_and_never_prints_credentials() {
    let dir = std::env::temp_dir().join(format!("lockstep-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    // A valid config whose listen address is not on this machine (TEST-NET-1): the summary is
    // printed, then binding fails with a clear error.
    std::fs::write(
        &good,
        "[server]\nlisten = \"192.0.2.1:8350\"\n\
         [[camera]]\nname = \"front-door\"\nurl = \"rtsp://admin:s3cret@192.168.1.10/stream1\"\n",
    )
    .unwrap();
    let out = lockstep(&["serve", "--config", good.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot listen on 192.0.2.1:8350"),
        "{stderr}"
    );
    assert!(
        stderr.contains("camera front-door at rtsp://***:***@192.168.1.10/stream1"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cret") && !stderr.contains("admin"),
        "{stderr}"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"127.0.0.1:8350\"\nlistne = 1\n").unwrap();
    let out = lockstep(&["serve", "--config", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("bad.toml: line 3: unknown field `listne`"),
        "{stderr}"
    );

    let missing = lockstep(&["serve", "--config", "/nonexistent/lockstep.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
