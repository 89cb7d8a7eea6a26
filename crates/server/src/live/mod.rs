//! The live server: cameras → sync → WebRTC, with the HTTP API and web UI.

pub mod api;
pub mod backoff;
pub mod camera;
mod discover_api;
pub mod echo_stage;
mod export_slots;
pub mod forwarded;
mod http_server;
mod listener;
mod media_socket;
pub(crate) mod media_stream;
mod metrics;
mod origin_policy;
mod pacer;
pub mod push;
mod push_audio_clock;
pub mod push_protocol;
mod push_session;
pub mod recorder;
pub mod recordings;
pub mod signalling;
mod source_driver;
pub mod state;
mod talk;
mod tls;
pub mod viewer_stream;
pub(crate) mod web;
mod whip;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use lockstep_rtsp::ingest::LocalClock;
use lockstep_webrtc::WhepHost;

use crate::config::{AuthMode, Config, EchoMode, RecordMode, Talkback};
use camera::{spawn_camera, CameraSettings};
use echo_stage::EchoPath;
use lockstep_media::EchoReference;
use recorder::{spawn_recorder, RecorderHandle, Storage};
use recordings::Recordings;
use state::AppState;

/// A running server.
#[derive(Debug)]
pub struct Running {
    pub http: SocketAddr,
    pub webrtc: SocketAddr,
    /// The RTSP restream's address, when `server.rtsp_listen` is set.
    pub rtsp: Option<SocketAddr>,
    _restream: Option<AbortOnDrop>,
    pub state: Arc<AppState>,
    /// Where the UI is: `http://ADDR/` or `https://ADDR/`.
    pub url: String,
    /// Under TLS: the certificate's file and SHA-256 fingerprint.
    pub fingerprint: Option<(std::path::PathBuf, String)>,
    /// The URL that logs a browser in with the run's token, while no user exists.
    pub login_url: Option<String>,
    server: tokio::task::JoinHandle<()>,
    shutdown: tokio::sync::watch::Sender<bool>,
    recorders: Vec<RecorderHandle>,
    retention: Option<recordings::RetentionThread>,
}

impl Running {
    /// Serves until the HTTP server stops (it only does if its task panics).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.server)
            .await
            .context("the HTTP server task failed")?;
        anyhow::bail!("the HTTP server stopped")
    }

    /// Closes every recording cleanly (the open segments end as `stopped`, not `crash`).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let recorders = self.recorders;
        let retention = self.retention;
        let joined = tokio::task::spawn_blocking(move || {
            for recorder in recorders {
                recorder.join();
            }
            if let Some(retention) = retention {
                retention.stop();
            }
        });
        if tokio::time::timeout(std::time::Duration::from_secs(10), joined)
            .await
            .is_err()
        {
            tracing::warn!("recorders did not stop within 10 s");
        }
    }
}

/// A task that ends with its owner.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Binds HTTP and WebRTC and starts every camera of `config`.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let listener = listener::bind(&config.server)?;
    let rtsp_listener = match config.server.rtsp_listen {
        Some(addr) => Some(
            crate::restream::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (server.rtsp_listen)"))?,
        ),
        None => None,
    };
    let rtsp = rtsp_listener
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()?;
    let http = listener.local_addr()?;
    let tls = tls::load(&config.server, &config.storage.dir).context("HTTPS")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (mut auth, run_token) = open_auth(config)?;
    auth.secure_cookies = tls.is_some();
    let login_url = run_token.map(|token| format!("{scheme}://{http}/login?token={token}"));
    let udp = SocketAddr::new(http.ip(), config.server.webrtc_port.unwrap_or(http.port()));
    let whep = WhepHost::bind(udp, &config.server.webrtc_addresses)
        .await
        .with_context(|| format!("cannot listen on {udp} (WebRTC, UDP)"))?;
    let webrtc = whep.udp_addr()?;
    let clock = LocalClock::new();
    // What each talking camera's speaker plays, shared by its talk path and its audio sessions
    // (none where nothing is done with it: no talk, or `echo = "off"`).
    let echo_paths: Vec<Option<EchoPath>> = config
        .cameras
        .iter()
        .map(|c| {
            (c.talkback != Talkback::Off && c.echo != EchoMode::Off).then(|| {
                EchoPath::new(
                    c.echo,
                    Arc::new(EchoReference::new(crate::talk::SPEAKER_RATE_HZ)),
                )
            })
        })
        .collect();
    let cameras = config
        .cameras
        .iter()
        .zip(&echo_paths)
        .map(|(c, echo)| {
            spawn_camera(
                CameraSettings {
                    name: c.name.to_string(),
                    kind: "camera",
                    url: c.url.for_connecting().to_owned(),
                    shown_url: c.url.to_string(),
                    audio: c.audio,
                    record_audio: c.record == RecordMode::Continuous && c.record_audio,
                    profile: c.latency,
                    sync_offset_ms: c.sync_offset_ms,
                    transport: c.transport,
                    echo: echo.clone(),
                },
                c.substream_url
                    .as_ref()
                    .map(|u| (u.for_connecting().to_owned(), u.to_string())),
                clock,
            )
        })
        .collect::<Vec<_>>();
    let pushes: Vec<_> = config
        .pushes
        .iter()
        .map(|p| push::PushSource::new(p, clock))
        .collect::<std::io::Result<_>>()
        .context("cannot start a push source's pacer thread")?;
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut recording: Vec<_> = config
        .cameras
        .iter()
        .zip(&cameras)
        .filter(|(c, _)| c.record == RecordMode::Continuous)
        .map(|(c, handle)| (c.name.to_string(), handle.clone()))
        .collect();
    recording.extend(
        config
            .pushes
            .iter()
            .zip(&pushes)
            .filter(|(p, _)| p.record == RecordMode::Continuous)
            .map(|(p, source)| (p.name.to_string(), source.handle.clone())),
    );
    let mut cameras = cameras;
    cameras.extend(pushes.iter().map(|p| p.handle.clone()));
    let mut recorders = Vec::new();
    let mut retention = None;
    let recordings = if recording.is_empty() {
        None
    } else {
        let root = config.storage.dir.clone();
        let recordings = Recordings::open(&root, &config.storage)?;
        let storage = Storage {
            root,
            segment_ticks: i64::from(config.storage.segment_secs)
                * i64::from(lockstep_sync::VIDEO_RATE_HZ),
        };
        let mut statuses = Vec::new();
        for (name, handle) in recording {
            let recorder = spawn_recorder(&handle, &storage, shutdown_rx.clone())
                .context("cannot start a recorder thread")?;
            statuses.push((name, recorder.status.clone()));
            recorders.push(recorder);
        }
        retention = Some(recordings.start_retention()?);
        Some(recordings.with_recorders(statuses))
    };
    let state = Arc::new(AppState {
        cameras,
        whep,
        recordings,
        pushes,
        ws_policy: ws::WsPolicy::from_config(&config.server),
        ws_limits: ws::ConnectionLimits::new(config.server.max_connections_per_ip),
        signalling: signalling::Signalling::new(std::time::Duration::from_secs(
            config.server.ws_resume_secs.into(),
        )),
        origins: origin_policy::OriginPolicy::new(
            &config.server.allowed_hosts,
            &config.server.allowed_origins,
        ),
        auth,
        talk: crate::talk::Talk::start(&config.cameras, &echo_paths, clock),
    });
    signalling::Signalling::publish_cameras(&state);
    let restream = rtsp_listener.map(|listener| {
        crate::restream::spawn(
            listener,
            state.clone(),
            std::time::Duration::from_secs(config.server.rtsp_timeout_secs.into()),
        )
    });
    let limits = http_server::HttpLimits::new(
        config.server.max_connections,
        config.server.max_connections_per_ip,
    );
    let options = listener::connection_options(listener::keepalive(&config.server));
    let fingerprint = tls
        .as_ref()
        .map(|t| (t.cert_path.clone(), t.fingerprint.clone()));
    let server = tokio::spawn(http_server::serve(
        listener,
        api::router(state.clone()),
        limits,
        tls,
        config.server.trusted_proxies.clone().into(),
        options,
    ));
    Ok(Running {
        http,
        webrtc,
        rtsp,
        _restream: restream.map(AbortOnDrop),
        state,
        url: format!("{scheme}://{http}/"),
        fingerprint,
        login_url,
        server,
        shutdown,
        recorders,
        retention,
    })
}

/// Authentication as configured, and the run's token when no user exists yet. Such a server
/// must listen on loopback: on the LAN, anyone who saw the token in a URL would be admin.
fn open_auth(config: &Config) -> anyhow::Result<(crate::auth::Auth, Option<String>)> {
    if config.server.auth == AuthMode::Off {
        tracing::warn!(
            "authentication is off (server.auth = \"off\"): every program and user of this \
             machine may use the server"
        );
        return Ok((crate::auth::Auth::off(), None));
    }
    let lifetime = std::time::Duration::from_secs(u64::from(config.server.session_hours) * 3600);
    let opened = crate::auth::Auth::open(&config.storage.dir, lifetime)
        .context("cannot open the user store")?;
    if opened.run_token.is_some() && !config.server.listen.ip().is_loopback() {
        anyhow::bail!(
            "no user exists yet, and server.listen is {}: create an admin first \
             (`lockstep user add NAME --role admin --config FILE`), or listen on 127.0.0.1 and \
             use the login URL the server prints",
            config.server.listen
        );
    }
    Ok((opened.auth, opened.run_token))
}

/// `lockstep serve`: start, print where, serve until Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let mut running = start(&config).await?;
    announce(&running);
    let result = tokio::select! {
        result = running.wait() => result,
        () = stop_signal() => Ok(()),
    };
    running.stop().await;
    result
}

/// Ctrl-C, or SIGTERM (a service manager stopping us) on Unix.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn announce(running: &Running) {
    eprintln!(
        "lockstep: serving {} (WebRTC on udp {}; candidates {:?})",
        running.url,
        running.webrtc,
        running.state.whep.candidates()
    );
    if let Some(rtsp) = running.rtsp {
        eprintln!("lockstep: restreaming every camera at rtsp://{rtsp}/CAMERA");
    }
    if let Some((path, fingerprint)) = &running.fingerprint {
        eprintln!(
            "lockstep: HTTPS with {} (SHA-256 {fingerprint}: compare it with what the browser \
             shows before accepting a self-signed certificate)",
            path.display()
        );
    }
    // Standard output is for programs: the URL, then the login URL when there is one, in one
    // write (a reader that stops after what it needs must not make a later write fail).
    let mut lines = format!("{}\n", running.url);
    if let Some(url) = &running.login_url {
        eprintln!(
            "lockstep: no user exists yet; open {url} to use the server as its admin (the token \
             changes every start; `lockstep user add NAME --role admin` makes a lasting admin)"
        );
        lines.push_str(url);
        lines.push('\n');
    }
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(lines.as_bytes())
        .and_then(|()| stdout.flush());
}
