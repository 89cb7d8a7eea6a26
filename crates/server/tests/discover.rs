//! `lockstep discover` against ONVIF device stand-ins (written from the ONVIF specifications,
//! not from a vendor's firmware: `peers/onvif_device.py`), inside a network namespace of the
//! test's own so the multicast probe stays there. Then the block it prints is served: the
//! camera it names goes live.

mod common;

use std::path::Path;
use std::process::Command;

use common::tempdir;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `script` (sh) in a new network namespace whose loopback carries multicast.
fn in_namespace(script: &str, dir: &Path) -> std::process::Output {
    let mut args = vec!["--net"];
    if !is_root() {
        args.splice(0..0, ["--user", "--map-root-user"]);
    }
    let setup = "set -e\nip link set lo up\nip link set lo multicast on\n\
                 ip route add 224.0.0.0/4 dev lo\n";
    Command::new("unshare")
        .args(&args)
        .args(["sh", "-c", &format!("{setup}{script}")])
        .current_dir(dir)
        .env("LOCKSTEP", env!("CARGO_BIN_EXE_lockstep"))
        .env(
            "DEVICES",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/onvif_device.py"),
        )
        .output()
        .expect("unshare runs")
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Four stand-ins answer one probe: two whole devices (one with a backchannel), one that
/// answers discovery but faults GetProfiles, one whose answer is not XML. Each is reported
/// with what it is or why it could not be read; a wrong password is named as such; and the
/// `[[camera]]` block printed for the first device, served as it is, brings its camera live.
#[test]
fn finds_devices_reads_their_streams_and_its_block_serves() {
    let dir = tempdir::Dir::new();
    let script = r#"
# Whatever happens, nothing outlives the script (a live child keeps the namespace alive).
pids=""
trap 'kill $pids 2>/dev/null || true' EXIT
"$LOCKSTEP" sim-camera --listen 127.0.0.1:8554 --size 320x240 > camera.out 2>&1 &
pids="$pids $!"
/usr/bin/python3 "$DEVICES" --first-port 8081 --count 4 --user admin --password 's3cret pass' \
    --refuse-profiles 2 --garbage 3 --stream rtsp://127.0.0.1:8554/cam > devices.out 2>&1 &
pids="$pids $!"
for i in $(seq 1 50); do grep -q ready devices.out && break; sleep 0.1; done
LOCKSTEP_ONVIF_PASSWORD='s3cret pass' "$LOCKSTEP" discover --user admin --timeout 1.5 \
    > table.txt 2> table.err
LOCKSTEP_ONVIF_PASSWORD='s3cret pass' "$LOCKSTEP" discover --user admin --timeout 1.5 --json \
    > found.json 2> found.err
LOCKSTEP_ONVIF_PASSWORD=wrong "$LOCKSTEP" discover --user admin --timeout 1 --json \
    > refused.json 2> refused.err
"$LOCKSTEP" discover --timeout 1 > anonymous.txt 2>&1
# The first device's block, served as printed.
printf '[server]\nlisten = "127.0.0.1:8350"\nauth = "off"\n[storage]\ndir = "data"\n' > lockstep.toml
/usr/bin/python3 -c '
import json; print(json.load(open("found.json"))[0]["camera"])' >> lockstep.toml
"$LOCKSTEP" serve --config lockstep.toml > serve.out 2> serve.err &
pids="$pids $!"
/usr/bin/python3 - > live.json <<'PY'
import json, time, urllib.request
found = json.load(open("found.json"))
name = found[0]["camera"].split('name = "')[1].split('"')[0]
state = {}
for _ in range(60):
    try:
        state = json.load(urllib.request.urlopen(f"http://127.0.0.1:8350/api/cameras/{name}"))
        if state.get("state") == "live":
            break
    except Exception as e:
        state = {"error": str(e)}
    time.sleep(0.5)
print(json.dumps(state))
PY
# The same search asked of the server (the UI's "Find cameras"), and two bad requests.
/usr/bin/python3 - > api.json <<'PY'
import json, urllib.error, urllib.request
import time
def post(body, path="/api/discover"):
    request = urllib.request.Request("http://127.0.0.1:8350" + path,
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        answer = urllib.request.urlopen(request, timeout=30)
        return [answer.status, json.load(answer)]
    except urllib.error.HTTPError as e:
        return [e.code, json.load(e)]
found = post({"user": "admin", "password": "s3cret pass", "timeout_secs": 1.5})
# The UI's "Add": a found device's table, posted as it came.
table = dict(found[1]["devices"][2]["table"])
name = table.pop("name")
added = post(table, f"/api/cameras/{name}")
state = {}
for _ in range(60):
    state = json.load(urllib.request.urlopen(f"http://127.0.0.1:8350/api/cameras/{name}"))
    if state.get("state") == "live":
        break
    time.sleep(0.5)
print(json.dumps({
    "found": found,
    "long": post({"timeout_secs": 100}),
    "half": post({"user": "admin"}),
    "added": added,
    "added_live": state,
}))
PY
cat lockstep.toml > saved.toml
"#;
    let out = in_namespace(script, dir.path());
    assert!(
        out.status.success(),
        "namespace script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = dir.path();
    let found: serde_json::Value =
        serde_json::from_str(&read(d, "found.json")).expect("discover --json is JSON");
    let found = found.as_array().expect("a list");
    // Devices 1, 2 and 4 answered in XML; 3's datagram is reported, not listed.
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        read(d, "found.err").contains("not a ProbeMatch"),
        "{}",
        read(d, "found.err")
    );
    let first = &found[0];
    assert_eq!(first["name"], "Stand-in Camera 1");
    assert_eq!(first["device"]["info"]["model"], "SI-100");
    let profiles = first["device"]["profiles"].as_array().expect("profiles");
    assert_eq!(profiles.len(), 2);
    assert_eq!(profiles[0]["video"]["codec"], "H264");
    assert_eq!(profiles[0]["video"]["width"], 1920);
    assert_eq!(profiles[0]["audio"]["rate_hz"], 8000);
    assert_eq!(profiles[0]["talkback"], true);
    let block = first["camera"].as_str().expect("a block");
    assert!(block.contains("name = \"stand-in-camera-1\""), "{block}");
    assert!(
        block.contains("url = \"rtsp://admin:s3cret%20pass@127.0.0.1:8554/cam\""),
        "{block}"
    );
    assert!(block.contains("talkback = \"onvif\""), "{block}");
    let refused_profiles = found[1]["error"].as_str().expect("device 2's error");
    assert!(
        refused_profiles.contains("GetProfiles") && refused_profiles.contains("not supported"),
        "{refused_profiles}"
    );
    assert_eq!(
        found[2]["camera"]
            .as_str()
            .map(|b| b.contains("talkback = \"off\"")),
        Some(true)
    );

    let table = read(d, "table.txt");
    assert!(
        table.contains("Stand-in SI-100 (firmware V1.1.0 build 261206"),
        "{table}"
    );
    assert!(
        table.contains("H264 1920x1080 25 fps, G711 8000 Hz, talkback"),
        "{table}"
    );

    let refused: serde_json::Value = serde_json::from_str(&read(d, "refused.json")).expect("JSON");
    for device in refused.as_array().expect("a list") {
        let error = device["error"].as_str().unwrap_or_default();
        assert!(error.contains("NotAuthorized"), "{device}");
    }
    let anonymous = read(d, "anonymous.txt");
    assert!(anonymous.contains("Stand-in Camera 4"), "{anonymous}");
    assert!(!anonymous.contains("s3cret"), "{anonymous}");

    let api: serde_json::Value = serde_json::from_str(&read(d, "api.json")).expect("JSON");
    assert_eq!(api["found"][0], 200, "{api}");
    let devices = api["found"][1]["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 3, "{api}");
    assert_eq!(devices[0]["camera"], first["camera"], "{api}");
    assert_eq!(
        api["found"][1]["unreadable"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(api["long"][0], 400, "{api}");
    assert!(api["long"][1]["error"]
        .as_str()
        .unwrap_or_default()
        .contains("timeout_secs"));
    assert_eq!(api["half"][0], 400, "{api}");
    assert!(api["half"][1]["error"]
        .as_str()
        .unwrap_or_default()
        .contains("together"));

    let live: serde_json::Value = serde_json::from_str(&read(d, "live.json")).expect("JSON");
    assert_eq!(live["state"], "live", "{live}\n{}", read(d, "serve.err"));

    // A found device added from the API: saved beside the pasted block, and live.
    assert_eq!(api["added"][0], 201, "{api}");
    assert_eq!(api["added_live"]["state"], "live", "{api}");
    assert!(!api["added"].to_string().contains("s3cret"), "{api}");
    let saved = read(d, "saved.toml");
    assert!(saved.contains("name = \"stand-in-camera-4\""), "{saved}");
    assert!(saved.contains("talkback = \"off\""), "{saved}");
}
