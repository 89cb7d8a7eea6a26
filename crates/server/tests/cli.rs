//! The binary's contract as a user meets it.

use std::process::Command;

fn lockstep(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("the lockstep binary runs")
}

#[test]
fn unbuilt_subcommands_say_so_and_exit_2() {
    for args in [&["demo"][..], &["serve"], &["discover"]] {
        let out = lockstep(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not implemented yet"), "{args:?}: {stderr}");
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
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
