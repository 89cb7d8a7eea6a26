//! The live server: cameras → sync → WebRTC, with the HTTP API and web UI.

pub mod api;
pub mod backoff;
pub mod camera;
mod camera_admin;
pub mod camera_runtime;
mod camera_set;
mod discover_api;
pub mod echo_stage;
mod export_slots;
pub mod forwarded;
mod http_server;
pub(crate) mod listener;
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

use crate::config::{AuthMode, Config, RecordMode};
use crate::config_edit::ConfigFile;
use camera_runtime::SourceRuntime;
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
        camera_runtime::stop_recording(&self.state).await;
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
        Some(addr) => Some(crate::restream::bind(addr).context("server.rtsp_listen")?),
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
    let whep = WhepHost::bind(
        listener::bind_udp(udp, "WebRTC")?,
        &config.server.webrtc_addresses,
    )
    .with_context(|| format!("cannot serve WebRTC on udp {udp}"))?;
    let webrtc = whep.udp_addr()?;
    let clock = LocalClock::new();
    let pushes: Vec<_> = config
        .pushes
        .iter()
        .map(|p| push::PushSource::new(p, clock))
        .collect::<std::io::Result<_>>()
        .context("cannot start a push source's pacer thread")?;
    let state = Arc::new(AppState {
        cameras: Default::default(),
        whep,
        recordings: Default::default(),
        runtime: SourceRuntime::new(
            clock,
            &config.storage,
            ConfigFile::new(config.file.clone(), &config.text.0),
        ),
        pushes: pushes.clone(),
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
        talk: Default::default(),
    });
    // A failed start leaves nothing running: the recorders close their segments.
    let started = (|| {
        for camera in &config.cameras {
            camera_runtime::start_camera(&state, camera)?;
        }
        for (source, push) in pushes.iter().zip(&config.pushes) {
            camera_runtime::start_push(&state, source, push.record == RecordMode::Continuous)?;
        }
        anyhow::Ok(())
    })();
    if let Err(e) = started {
        camera_runtime::stop_recording(&state).await;
        return Err(e);
    }
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
    serve_until(config, stop_signal()).await
}

/// Serves until `stop` (Ctrl-C, a service's Stop), then closes the recordings cleanly.
pub async fn serve_until(
    config: Config,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut running = start(&config).await?;
    announce(&running);
    // Also in the log: a service's only output.
    tracing::info!("serving {}", running.url);
    let result = tokio::select! {
        result = running.wait() => result,
        () = stop => Ok(()),
    };
    running.stop().await;
    tracing::info!("stopped (open recordings closed)");
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
