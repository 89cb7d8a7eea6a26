//! Signalling under churn, on loopback: 10 000 WebSocket connect/upgrade/close cycles all
//! succeed; the close handshake leaves TIME_WAIT on the server, not on the clients (whose
//! ephemeral ports a reconnect storm would otherwise exhaust); and a server restarted at once on
//! the same port binds despite the thousands of TIME_WAIT entries its last run left.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{tempdir, time_wait, Server};
use futures::StreamExt as _;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

const CYCLES: usize = 10_000;
const WORKERS: usize = 4;

fn config(port: u16) -> String {
    let mut config = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n");
    for w in 0..WORKERS {
        config.push_str(&format!("[[push]]\nname = \"churn-{w}\"\n"));
    }
    config
}

/// One cycle as a well-behaved client does it: connect, upgrade, close, then wait for the
/// server's close frame and its FIN before letting go.
async fn cycle(addr: std::net::SocketAddr, url: &str) -> Result<(), String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut ws, response) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    if response.status() != 101 {
        return Err(format!("upgrade answered {}", response.status()));
    }
    ws.close(None).await.map_err(|e| format!("close: {e}"))?;
    let mut got_close = false;
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Close(_)) => got_close = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if !got_close {
        return Err("no close frame from the server".into());
    }
    // The server closes TCP first: wait for its FIN.
    let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        return Err("not a plain stream".into());
    };
    let mut rest = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut rest)).await {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(n)) => Err(format!("{n} bytes after the close")),
        Ok(Err(e)) => Err(format!("read after close: {e}")),
        Err(_) => Err("the server did not close the connection".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_cycles_leave_no_time_wait_on_clients_and_a_restart_binds_at_once() {
    let dir = tempdir::Dir::new();
    let server = Server::with_config_in(&dir, &config(0));
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let port = addr.port();
    let before = time_wait(port);

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let url = format!("ws://{addr}/api/push/churn-{w}");
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..CYCLES / WORKERS {
                if let Err(e) = cycle(addr, &url).await {
                    failures.push(e);
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of {CYCLES} cycles failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    let (server_side, client_side) = time_wait(port);
    eprintln!(
        "TIME_WAIT after {CYCLES} cycles: server side {server_side}, client side {client_side}"
    );
    assert!(
        client_side <= before.1 + CYCLES / 100,
        "{client_side} client-side TIME_WAIT sockets after {CYCLES} cycles (server side {server_side})"
    );
    assert!(
        server_side >= CYCLES / 2,
        "the server should hold the TIME_WAITs: {server_side}"
    );

    // A restart under those thousands of TIME_WAIT entries binds the same port at once.
    server.kill();
    let restarted = Server::with_config_in(&dir, &config(port));
    assert_eq!(restarted.get_json("/api/health")["status"], "ok");
    assert!(
        time_wait(port).0 >= CYCLES / 2,
        "the TIME_WAITs were still there"
    );
}
