//! Authentication end to end, against the real binary over real HTTP: what every route asks of
//! a caller without credentials, with a viewer's session, a metrics token and an admin's; CSRF;
//! logout; tokens made and revoked at run time; the audit log; login rate limiting; and a
//! server without users, which takes the run's token and listens on loopback only.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{http_with, tempdir, Response, Server};

const ADMIN_PASSWORD: &str = "admin: p@ss/w%rd#1?";
const VIEWER_PASSWORD: &str = "viewer-password-2";

fn lockstep(dir: &tempdir::Dir, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .arg("--config")
        .arg(dir.path().join("lockstep.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "lockstep {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A request as a caller with these header lines.
fn call(server: &Server, headers: &[String], method: &str, path: &str, body: &str) -> Response {
    let content_type = if path.starts_with("/api/whep") || path.starts_with("/api/whip") {
        "application/sdp"
    } else if body.is_empty() {
        ""
    } else {
        "application/json"
    };
    http_with(&server.base, headers, method, path, content_type, body)
}

fn bearer(token: &str) -> Vec<String> {
    vec![format!("Authorization: Bearer {token}")]
}

/// Logs in: the session's cookie and CSRF token as header lines (the CSRF one separate).
fn log_in(server: &Server, name: &str, password: &str) -> (Vec<String>, String) {
    let body = serde_json::json!({"name": name, "password": password}).to_string();
    let r = call(server, &[], "POST", "/api/login", &body);
    assert_eq!(r.status, 200, "login {name}: {}", r.body);
    let cookie = r.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    let session: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let csrf = session["csrf"].as_str().unwrap().to_owned();
    (
        vec![format!("Cookie: {pair}")],
        format!("X-CSRF-Token: {csrf}"),
    )
}

fn with(mut headers: Vec<String>, line: &str) -> Vec<String> {
    headers.push(line.to_owned());
    headers
}

#[test]
fn every_route_asks_who_is_calling_and_grants_only_what_they_may() {
    let dir = tempdir::Dir::new();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"on\"\n\n[storage]\ndir = '{}'\n\n\
         [[push]]\nname = \"door\"\n\n[[push]]\nname = \"yard\"\n",
        dir.path().join("data").display()
    );
    std::fs::write(dir.path().join("lockstep.toml"), &config).unwrap();
    lockstep(
        &dir,
        &["user", "add", "admin", "--role", "admin"],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    lockstep(
        &dir,
        &[
            "user",
            "add",
            "viewer",
            "--role",
            "viewer",
            "--cameras",
            "door",
        ],
        &format!("{VIEWER_PASSWORD}\n"),
    );
    let prometheus = String::from_utf8(
        lockstep(
            &dir,
            &["token", "add", "prometheus", "--role", "metrics"],
            "",
        )
        .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    assert!(prometheus.starts_with("lst_"), "{prometheus}");
    let listed = String::from_utf8(lockstep(&dir, &["user", "list"], "").stdout).unwrap();
    assert!(listed.contains("viewer\tview\tdoor"), "{listed}");
    let server = Server::with_config_in(&dir, &config);

    // Without credentials: 401 (with the scheme to use) everywhere but the health probe, the
    // login page and the UI's static files.
    let routes = [
        ("GET", "/api/cameras"),
        ("GET", "/api/cameras/door"),
        ("POST", "/api/whep/door"),
        ("DELETE", "/api/whep/door/abc"),
        ("GET", "/api/ws"),
        ("GET", "/api/media/door"),
        ("GET", "/api/push/door"),
        ("POST", "/api/whip/door"),
        ("GET", "/api/recordings/door"),
        ("GET", "/api/recordings/door/export.mp4"),
        ("GET", "/metrics"),
        ("GET", "/api/session"),
        ("GET", "/api/tokens"),
        ("POST", "/api/users"),
        ("GET", "/api/audit"),
        ("GET", "/api/nothing-here"),
    ];
    for (method, path) in routes {
        let r = call(&server, &[], method, path, "");
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"lockstep\"")
        );
    }
    for path in ["/api/health", "/login", "/", "/app.js", "/login.js"] {
        assert_eq!(call(&server, &[], "GET", path, "").status, 200, "{path}");
    }
    let r = call(&server, &bearer("lst_made-up"), "GET", "/api/cameras", "");
    assert_eq!(r.status, 401);
    assert!(r.body.contains("not one this server issued"), "{}", r.body);
    // No user exists without one: the run's token is not taken either.
    assert_eq!(
        call(&server, &[], "GET", "/login?token=lsr_x", "").status,
        401
    );

    // A wrong password, then the viewer (door only, view only).
    let wrong = serde_json::json!({"name": "viewer", "password": "nope-nope"}).to_string();
    let r = call(&server, &[], "POST", "/api/login", &wrong);
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    // A name no user can have is refused the same way, and kept nowhere (the audit below).
    let huge = serde_json::json!({"name": "x".repeat(100_000), "password": "p"}).to_string();
    assert_eq!(call(&server, &[], "POST", "/api/login", &huge).status, 401);
    let (viewer, viewer_csrf) = log_in(&server, "viewer", VIEWER_PASSWORD);
    let cameras: serde_json::Value =
        serde_json::from_str(&call(&server, &viewer, "GET", "/api/cameras", "").body).unwrap();
    let names: Vec<&str> = cameras
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["door"]);
    let refused = [
        ("GET", "/api/cameras/yard", "not among viewer's cameras"),
        (
            "GET",
            "/api/recordings/door",
            "lacks the playback permission",
        ),
        (
            "GET",
            "/api/recordings/door/export.mp4",
            "lacks the playback permission",
        ),
        ("POST", "/api/whip/door", "lacks the publish permission"),
        ("GET", "/api/push/door", "lacks the publish permission"),
        ("GET", "/metrics", "lacks the metrics permission"),
        ("GET", "/api/tokens", "lacks the admin permission"),
        ("GET", "/api/audit", "lacks the admin permission"),
        ("POST", "/api/discover", "lacks the admin permission"),
        ("POST", "/api/talk/door", "lacks the talk permission"),
    ];
    for (method, path, says) in refused {
        let r = call(
            &server,
            &with(viewer.clone(), &viewer_csrf),
            method,
            path,
            "",
        );
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert!(r.body.contains(says), "{method} {path}: {}", r.body);
    }
    // Changing something from a browser session takes the session's CSRF token.
    let r = call(&server, &viewer, "POST", "/api/whep/door", "v=0");
    assert_eq!(r.status, 403);
    assert!(r.body.contains("X-CSRF-Token"), "{}", r.body);
    let r = call(
        &server,
        &with(viewer.clone(), "X-CSRF-Token: forged"),
        "POST",
        "/api/whep/door",
        "v=0",
    );
    assert_eq!(r.status, 403);
    // With it, the request reaches the handler (which finds no producer on the push source).
    let r = call(
        &server,
        &with(viewer.clone(), &viewer_csrf),
        "POST",
        "/api/whep/door",
        "v=0",
    );
    assert!(![401, 403].contains(&r.status), "{}: {}", r.status, r.body);
    // The signalling socket opens with the session (a browser sends its cookie on upgrade).
    let url = format!("{}/api/ws", server.base.replace("http://", "ws://"));
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    let cookie = viewer[0].trim_start_matches("Cookie: ");
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut socket, response) = tungstenite::connect(request).unwrap();
    assert_eq!(response.status(), 101);
    let welcome = socket.read().unwrap();
    assert!(
        welcome.to_text().unwrap().contains("\"welcome\""),
        "{welcome}"
    );
    let _ = socket.close(None);

    // The metrics token reads /metrics and nothing else.
    assert_eq!(
        call(&server, &bearer(&prometheus), "GET", "/metrics", "").status,
        200
    );
    assert_eq!(
        call(&server, &bearer(&prometheus), "GET", "/api/cameras", "").status,
        403
    );

    // The admin makes a token at run time; it works at once, and not after it is revoked.
    let (admin, admin_csrf) = log_in(&server, "admin", ADMIN_PASSWORD);
    let admin_changes = with(admin.clone(), &admin_csrf);
    let body = serde_json::json!({"name": "whep-player", "role": "viewer"}).to_string();
    let r = call(&server, &admin_changes, "POST", "/api/tokens", &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let made: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let token = made["token"].as_str().unwrap();
    assert_eq!(
        call(&server, &bearer(token), "GET", "/api/cameras/yard", "").status,
        200
    );
    // A WHEP client (RFC 9725: the token as a bearer) is answered with it, refused without.
    let endpoint = format!("{}/api/whep/yard", server.base);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use lockstep_webrtc::whep_client::{WhepClient, WhepClientError};
        let watching = WhepClient::connect_with(&endpoint, Some(token)).await;
        assert!(watching.is_ok(), "{:?}", watching.err());
        match WhepClient::connect(&endpoint).await {
            Err(WhepClientError::Refused { status, .. }) => assert_eq!(status, "401"),
            other => panic!("without a token: {:?}", other.err()),
        }
    });
    // A viewer may not talk (the talk permission; the talk tests hold the talking itself).
    runtime.block_on(async {
        use lockstep_webrtc::whep_client::WhepClientError;
        use lockstep_webrtc::whip_client::WhipClient;
        let talk = format!("{}/api/talk/yard", server.base);
        match WhipClient::connect_with(&talk, Some(token)).await {
            Err(WhepClientError::Refused { status, body }) => {
                assert_eq!(status, "403", "{body}");
                assert!(body.contains("talk"), "{body}");
            }
            other => panic!("a viewer talked: {:?}", other.err()),
        }
    });
    let listed = call(&server, &admin, "GET", "/api/tokens", "").body;
    assert!(
        listed.contains("whep-player") && !listed.contains(token),
        "{listed}"
    );
    let id = made["id"].as_str().unwrap();
    let r = call(
        &server,
        &admin_changes,
        "DELETE",
        &format!("/api/tokens/{id}"),
        "",
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        call(&server, &bearer(token), "GET", "/api/cameras", "").status,
        401
    );

    // Logging out ends the session for good.
    let r = call(&server, &viewer, "POST", "/api/logout", "");
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        call(&server, &viewer, "GET", "/api/cameras", "").status,
        401
    );

    // Three wrong passwords for an account from one address, then it waits — even with the
    // right password — while the other account logs in from the same address.
    for _ in 0..3 {
        let r = call(&server, &[], "POST", "/api/login", &wrong);
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let right = serde_json::json!({"name": "viewer", "password": VIEWER_PASSWORD}).to_string();
    let r = call(&server, &[], "POST", "/api/login", &right);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    log_in(&server, "admin", ADMIN_PASSWORD);

    // The audit log holds the logins, the failures and the token's life; no password.
    let audit = call(&server, &admin, "GET", "/api/audit?limit=1000", "").body;
    for event in [
        "\"login\"",
        "\"login failed\"",
        "\"token created\"",
        "\"token revoked\"",
        "\"logout\"",
        "\"user added\"",
    ] {
        assert!(audit.contains(event), "{event}: {audit}");
    }
    for secret in [ADMIN_PASSWORD, VIEWER_PASSWORD, token, &prometheus] {
        assert!(!audit.contains(secret), "the audit log holds a secret");
    }
    assert!(
        !audit.contains(&"x".repeat(100)),
        "the audit log holds the huge name"
    );
}

#[test]
fn a_server_without_users_takes_its_run_token_on_loopback_only() {
    let dir = tempdir::Dir::new();
    let data = dir.path().join("data");
    // On the LAN without a user, anyone who saw the URL would be admin: it refuses to start.
    let config = dir.path().join("lockstep.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"0.0.0.0:0\"\nauth = \"on\"\n[storage]\ndir = '{}'\n",
            data.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no user exists yet") && stderr.contains("user add"),
        "{stderr}"
    );

    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"on\"\n[storage]\ndir = '{}'\n\
             [[push]]\nname = \"avatar\"\n",
            data.display()
        ),
    )
    .unwrap();
    let (server, login) =
        Server::start_with_login(&["serve", "--config", config.to_str().unwrap()]);
    // The token in the URL is the admin's key while the run lasts …
    assert_eq!(server.get_json("/api/session")["via"], "run-token");
    // … and, opened in a browser, becomes a session cookie and the UI.
    let path = login.trim_start_matches(&server.base);
    let r = call(&server, &[], "GET", path, "");
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/"));
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r = call(
        &server,
        &[format!("Cookie: {cookie}")],
        "GET",
        "/api/session",
        "",
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("\"admin\"") && r.body.contains("\"session\""),
        "{}",
        r.body
    );
    let r = call(&server, &[], "GET", "/login?token=lsr_wrong", "");
    assert_eq!(r.status, 401);
    assert!(r.body.contains("changes every time"), "{}", r.body);

    // The run's admin creates the first user; from the next start on, the token is gone.
    let body = serde_json::json!({"name": "owner", "password": ADMIN_PASSWORD, "role": "admin"});
    let r = server.request("POST", "/api/users", "application/json", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let short = serde_json::json!({"name": "kid", "password": "short", "role": "viewer"});
    let r = server.request("POST", "/api/users", "application/json", &short.to_string());
    assert_eq!(r.status, 400);
    assert!(r.body.contains("at least 8"), "{}", r.body);
    drop(server);
    let (child, line) = common::spawn_lockstep(&["serve", "--config", config.to_str().unwrap()]);
    let server = Server::new(child, &line);
    assert_eq!(
        call(&server, &[], "GET", path, "").status,
        401,
        "an old run's token"
    );
    let (owner, _) = log_in(&server, "owner", ADMIN_PASSWORD);
    assert_eq!(call(&server, &owner, "GET", "/api/users", "").status, 200);
}
