//! `lockstep sim-camera`: an RTSP/1.0 server that behaves like a real IP camera, whose truth is
//! known. Its picture flashes and its microphone beeps at the same true instant once a second;
//! every frame carries its index and capture wallclock in a stripe; its clocks drift as configured;
//! its sender reports tell the truth (or are off); the network in front of it misbehaves on
//! demand; it has an ONVIF backchannel whose speaker echoes into its microphone.

mod config;
mod connection;
mod forward;
mod live;
mod sdp;
mod speaker;

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{parse_size, AudioCodec, ConfigError, Impairments, SimCameraConfig};
pub use live::TrackStart;

/// The path the camera serves.
pub const CAMERA_PATH: &str = "/cam";
/// The ONVIF backchannel feature tag.
pub const BACKCHANNEL_REQUIRE: &str = "www.onvif.org/ver20/backchannel";

/// Why the camera could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("sim-camera: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("sim-camera: {0}")]
    Media(String),
}

/// splitmix64: session ids, nonces, impairments. Seeded, so a run can be repeated.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// Shared by every connection.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) cfg: SimCameraConfig,
    pub(crate) live: Arc<live::Live>,
    /// Bumped when `--drop-after` fires: every connection closes.
    pub(crate) drops: watch::Receiver<u32>,
}

/// A running camera.
#[derive(Debug)]
pub struct SimCamera {
    local_addr: SocketAddr,
    live: Arc<live::Live>,
    accept: JoinHandle<()>,
    drop_timer: Option<JoinHandle<()>>,
    _drops: Arc<watch::Sender<u32>>,
}

impl SimCamera {
    /// Validates the configuration, starts capturing and listens. Needs a tokio runtime.
    pub async fn start(cfg: SimCameraConfig) -> Result<SimCamera, StartError> {
        cfg.validate()?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let live = live::start(&cfg).map_err(StartError::Media)?;
        // The camera keeps the sender: while it lives, connections only see deliberate drops.
        let (drop_tx, drops) = watch::channel(0u32);
        let drop_tx = Arc::new(drop_tx);
        let drop_timer = cfg.drop_after.map(|after| {
            let drop_tx = Arc::clone(&drop_tx);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                tracing::info!("sim-camera: --drop-after: closing every connection");
                drop_tx.send_modify(|n| *n += 1);
            })
        });
        let ctx = Arc::new(Context {
            cfg,
            live: Arc::clone(&live),
            drops,
        });
        let accept = tokio::spawn(async move {
            let mut seed = ctx.cfg.seed;
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                seed = seed.wrapping_add(1);
                tokio::spawn(connection::serve(stream, peer, Arc::clone(&ctx), seed));
            }
        });
        Ok(SimCamera {
            local_addr,
            live,
            accept,
            drop_timer,
            _drops: drop_tx,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `rtsp://ADDR/cam`.
    pub fn url(&self) -> String {
        format!("rtsp://{}{CAMERA_PATH}", self.local_addr)
    }

    /// Backchannel RTP packets the speaker has played.
    pub fn backchannel_packets(&self) -> u64 {
        self.live
            .speaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .packets
    }

    /// The report blocks of the receiver reports clients sent over UDP, oldest first.
    pub fn receiver_reports(&self) -> Vec<crate::rtp::ReportBlock> {
        self.live
            .receiver_reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }

    pub fn shutdown(self) {
        self.live.stop();
        self.accept.abort();
        if let Some(timer) = self.drop_timer {
            timer.abort();
        }
    }
}
