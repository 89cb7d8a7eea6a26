//! WebSocket signalling under churn and at rest, against a release `lockstep serve`:
//! - churn: connect/upgrade/close cycles per second on loopback (4 clients in parallel, each
//!   closing as RFC 6455 asks and waiting for the server's FIN), failures, and TIME_WAIT left on
//!   each side;
//! - rest: N idle signalling connections (`/api/ws`, each sent the cameras' state once a second
//!   and a ping every 15 s): the server's RSS per connection and its CPU.
//!
//!   cargo bench -p lockstep --bench ws_churn -- [CYCLES] [IDLE]     (default 10000 10000)
//!
//! `AUTH=on` runs it with authentication: every upgrade carries the run's token as a bearer.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

#[path = "../tests/common/mod.rs"]
mod common;

/// A client request for `url`, with `Authorization: Bearer` when there is a token.
fn request(
    url: &str,
    token: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

async fn cycle(addr: std::net::SocketAddr, url: &str, token: Option<&str>) -> bool {
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return false;
    };
    let _ = tcp.set_nodelay(true);
    let Ok((mut ws, _)) =
        tokio_tungstenite::client_async(request(url, token), MaybeTlsStream::Plain(tcp)).await
    else {
        return false;
    };
    if ws.close(None).await.is_err() {
        return false;
    }
    while let Some(Ok(_)) = ws.next().await {}
    let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        return false;
    };
    let mut rest = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut rest)).await,
        Ok(Ok(0))
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let cycles = args.first().copied().unwrap_or(10_000);
    let idle = args.get(1).copied().unwrap_or(10_000);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let dir = common::tempdir::Dir::new();
    let auth = std::env::var("AUTH").unwrap_or_else(|_| "off".into());
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"{auth}\"\nmax_connections_per_ip = {}\n\
         max_connections = {}\n[storage]\ndir = '{}'\n",
        idle + 100,
        idle + 1000,
        dir.path().join("data").display()
    );
    for w in 0..4 {
        config.push_str(&format!("[[push]]\nname = \"churn-{w}\"\n"));
    }
    let path = dir.path().join("lockstep.toml");
    std::fs::write(&path, config).unwrap();
    let (mut child, lines) = common::spawn_lines(
        std::process::Command::new(env!("CARGO_BIN_EXE_lockstep")).args([
            "serve",
            "--config",
            path.to_str().unwrap(),
        ]),
        if auth == "on" { 2 } else { 1 },
    );
    let line = &lines[0];
    let token: Option<String> = lines
        .get(1)
        .and_then(|l| l.split_once("token=").map(|(_, t)| t.to_owned()));
    let pid = child.id();
    let addr: std::net::SocketAddr = line
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let hz = 100.0; // USER_HZ on Linux

    // Churn.
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..4 {
        let url = format!("ws://{addr}/api/push/churn-{w}");
        let token = token.clone();
        workers.push(tokio::spawn(async move {
            let mut failed = 0;
            for _ in 0..cycles / 4 {
                if !cycle(addr, &url, token.as_deref()).await {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for w in workers {
        failed += w.await.unwrap_or(cycles / 4);
    }
    let secs = started.elapsed().as_secs_f64();
    let (server_tw, client_tw) = common::time_wait(addr.port());
    println!("| cycles | failed | cycles/s | TIME_WAIT server side | client side |");
    println!("|---|---|---|---|---|");
    println!(
        "| {cycles} | {failed} | {:.0} | {server_tw} | {client_tw} |\n",
        cycles as f64 / secs
    );

    // Rest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = common::rss_mib(pid) * 1024.0;
    let url = format!("ws://{addr}/api/ws");
    let mut sockets = Vec::with_capacity(idle);
    let opening = Instant::now();
    for _ in 0..idle {
        match tokio_tungstenite::connect_async(request(&url, token.as_deref())).await {
            Ok((ws, _)) => sockets.push(ws),
            Err(e) => {
                eprintln!("idle connection {}: {e}", sockets.len());
                break;
            }
        }
    }
    let opened_secs = opening.elapsed().as_secs_f64();
    // The clients read what they are sent (each in its own task), as browsers would.
    let open = sockets.len();
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Ping(p) = message {
                        let _ = ws.send(Message::Pong(p)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_open = common::rss_mib(pid) * 1024.0;
    let t0 = common::cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = (common::cpu_ticks(pid) - t0) as f64 / hz / 10.0 * 100.0;
    println!("| idle /api/ws connections | opened in | server RSS before / with them | per connection | server CPU with them |");
    println!("|---|---|---|---|---|");
    println!(
        "| {open} | {opened_secs:.1} s | {:.1} / {:.1} MiB | {:.1} KiB | {cpu:.1} % of a core |",
        rss_before / 1024.0,
        rss_open / 1024.0,
        (rss_open - rss_before) / open.max(1) as f64,
    );
    for r in readers {
        r.abort();
    }
    let _ = child.kill();
    let _ = child.wait();
}
