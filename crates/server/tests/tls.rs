//! HTTPS with a self-signed certificate, checked with an independent TLS peer (Python's `ssl`,
//! OpenSSL underneath) that trusts only the certificate the server made: the handshake and the
//! certificate's names, a `Secure` session cookie, a plain-HTTP request on the same port sent
//! to HTTPS, and the same certificate again after a restart.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{http, spawn_lines, tempdir};

/// `GET path` over HTTPS from Python, trusting `cafile` only: `(status, Set-Cookie, body)`.
fn python_get(cafile: &std::path::Path, port: u16, path: &str) -> (u16, String, String) {
    let script = format!(
        "import ssl, http.client, json\n\
         ctx = ssl.create_default_context(cafile={cafile:?})\n\
         c = http.client.HTTPSConnection('127.0.0.1', {port}, context=ctx, timeout=10)\n\
         c.request('GET', {path:?})\n\
         r = c.getresponse()\n\
         print(json.dumps([r.status, r.getheader('set-cookie') or '', r.read().decode()]))\n",
        cafile = cafile.to_str().unwrap(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, cookie, body): (u16, String, String) =
        serde_json::from_slice(&out.stdout).unwrap();
    (status, cookie, body)
}

#[test]
fn a_self_signed_server_speaks_https_and_sends_plain_http_there() {
    let dir = tempdir::Dir::new();
    let data = dir.path().join("data");
    let config = dir.path().join("lockstep.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntls = \"self-signed\"\n[storage]\ndir = '{}'\n",
            data.display()
        ),
    )
    .unwrap();
    let args = ["serve", "--config", config.to_str().unwrap()];
    let start = || spawn_lines(Command::new(env!("CARGO_BIN_EXE_lockstep")).args(args), 2);
    let (mut child, lines) = start();
    let url = url::Url::parse(&lines[0]).unwrap();
    assert_eq!(url.scheme(), "https", "{lines:?}");
    assert!(lines[1].starts_with("https://"), "{lines:?}");
    let port = url.port().unwrap();
    let cert = data.join("tls/cert.pem");
    let first_cert = std::fs::read_to_string(&cert).unwrap();

    let (status, _, body) = python_get(&cert, port, "/api/health");
    assert_eq!(status, 200, "{body}");
    let login = &lines[1][lines[1].find("/login").unwrap()..];
    let (status, cookie, _) = python_get(&cert, port, login);
    assert_eq!(status, 303);
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    // Someone typed http:// : sent to the same place over HTTPS.
    let plain = http(
        &format!("http://127.0.0.1:{port}"),
        "GET",
        "/api/cameras?x=1",
        "",
        "",
    );
    assert_eq!(plain.status, 308);
    assert_eq!(
        plain.header("location"),
        Some(format!("https://127.0.0.1:{port}/api/cameras?x=1").as_str())
    );

    // A restart keeps the certificate (a browser's exception for it stays valid).
    let _ = child.kill();
    let _ = child.wait();
    let (mut child, lines) = start();
    let port = url::Url::parse(&lines[0]).unwrap().port().unwrap();
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), first_cert);
    assert_eq!(python_get(&cert, port, "/api/health").0, 200);
    let _ = child.kill();
    let _ = child.wait();
}
