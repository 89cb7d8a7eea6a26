//! The live server: cameras → sync → WebRTC, with the HTTP API and web UI.

pub mod api;
pub mod backoff;
pub mod camera;
mod metrics;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use lockstep_rtsp::ingest::LocalClock;
use lockstep_webrtc::WhepHost;

use crate::config::Config;
use api::AppState;
use camera::{spawn_camera, CameraSettings};

/// A running server.
#[derive(Debug)]
pub struct Running {
    pub http: SocketAddr,
    pub webrtc: SocketAddr,
    pub state: Arc<AppState>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Serves until the HTTP server stops (it only does on an IO error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server
            .await
            .context("the HTTP server task failed")?
            .context("the HTTP server stopped")
    }
}

/// Binds HTTP and WebRTC and starts every camera of `config`.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (HTTP)", config.server.listen))?;
    let http = listener.local_addr()?;
    let udp = SocketAddr::new(http.ip(), config.server.webrtc_port.unwrap_or(http.port()));
    let whep = WhepHost::bind(udp, &config.server.webrtc_addresses)
        .await
        .with_context(|| format!("cannot listen on {udp} (WebRTC, UDP)"))?;
    let webrtc = whep.udp_addr()?;
    let clock = LocalClock::new();
    let cameras = config
        .cameras
        .iter()
        .map(|c| {
            spawn_camera(
                CameraSettings {
                    name: c.name.to_string(),
                    url: c.url.for_connecting().to_owned(),
                    shown_url: c.url.to_string(),
                    audio: c.audio,
                    profile: c.latency,
                    sync_offset_ms: c.sync_offset_ms,
                },
                clock,
            )
        })
        .collect();
    let state = Arc::new(AppState { cameras, whep });
    let app = api::router(state.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Running {
        http,
        webrtc,
        state,
        server,
    })
}

/// `lockstep serve`: start, print where, serve until Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let running = start(&config).await?;
    announce(&running);
    tokio::select! {
        result = running.wait() => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

pub fn announce(running: &Running) {
    eprintln!(
        "lockstep: serving http://{}/ (WebRTC on udp {}; candidates {:?})",
        running.http,
        running.webrtc,
        running.state.whep.candidates()
    );
    println!("http://{}/", running.http);
}
