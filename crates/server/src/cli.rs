//! The command line: the public contract of `design/contracts.md`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "lockstep",
    version,
    about = "Keeps cameras and talking avatars in sync: RTSP/WebRTC ingest, active A/V sync, \
             low-latency delivery, recording."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web UI with built-in simulated cameras: nothing to configure.
    Demo(DemoArgs),
    /// Serve the cameras of a config file.
    Serve(ServeArgs),
    /// An RTSP camera simulator whose picture flashes and audio beeps at the same true instant.
    SimCamera(SimCameraArgs),
    /// Measure the audio-video offset of beep-flash content in a file or live stream.
    Measure(MeasureArgs),
    /// A simulated talking avatar: pushes beep-flash audio and frames to a push source.
    PushSim(PushSimArgs),
    /// Find ONVIF cameras on the LAN (WS-Discovery) and, with credentials, what they stream.
    Discover(DiscoverArgs),
    /// The server's users (kept in auth.sqlite beside the recordings).
    User(UserArgs),
    /// API tokens for scripts, WHEP/WHIP clients, producers and Prometheus.
    Token(TokenArgs),
    /// Windows: lockstep as a service serving %ProgramData%\lockstep\lockstep.toml (on Linux:
    /// examples/lockstep.service for systemd).
    Service(ServiceArgs),
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[arg(value_enum)]
    pub action: ServiceAction,
    /// The config the service serves (install: default %ProgramData%\lockstep\lockstep.toml;
    /// its logs go to `logs\` beside it).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceAction {
    /// Register the service (started with Windows, restarted after a failure).
    Install,
    /// Stop and unregister it (config, data and logs stay).
    Uninstall,
    Start,
    /// Stop it (open recordings are closed as `stopped`).
    Stop,
    /// How the service manager starts it (not for people).
    Run,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// How long to wait for answers, in seconds.
    #[arg(long, default_value_t = 3.0, value_parser = discover_timeout)]
    pub timeout: f64,
    /// Print JSON (one object per device) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The devices' user; the password is read from LOCKSTEP_ONVIF_PASSWORD. Without it only
    /// what discovery says is shown (most devices answer nothing else without credentials).
    #[arg(long)]
    pub user: Option<String>,
    /// A device to ask without discovery (`HOST[:PORT]` or its device service URL); repeatable.
    #[arg(long)]
    pub address: Vec<String>,
    /// Probe the LAN as well when --address is given.
    #[arg(long)]
    pub probe: bool,
}

fn discover_timeout(text: &str) -> Result<f64, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.2..=60.0).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!("{secs} is outside 0.2–60 s"))
    }
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
    /// The server's config: its storage folder holds the users.
    #[arg(long, default_value = "lockstep.toml", global = true)]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user (or, with --replace, change one); the password is asked for, or read from
    /// standard input with --password-stdin.
    Add {
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        replace: bool,
    },
    List,
    /// Remove a user and end their sessions.
    Remove {
        name: String,
    },
}

/// What a user or token may do.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// admin, operator (view, talk, playback), viewer, publisher or metrics.
    #[arg(long, conflicts_with = "can")]
    pub role: Option<String>,
    /// Permissions instead of a role: view,talk,playback,publish,metrics,admin.
    #[arg(long)]
    pub can: Option<String>,
    /// Only these cameras (comma-separated names); default all.
    #[arg(long)]
    pub cameras: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
    #[arg(long, default_value = "lockstep.toml", global = true)]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token; it is printed once and never shown again.
    Add {
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    List,
    /// Revoke a token by its id (from `token list`).
    Revoke {
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct PushSimArgs {
    /// The push endpoint: ws://HOST:PORT/api/push/NAME (or http://…/api/whip/NAME with --whip).
    pub url: String,
    /// Publish over WebRTC (WHIP) instead of the push WebSocket, as a browser or OBS would.
    #[arg(long)]
    pub whip: bool,
    #[arg(long, default_value = "512x512")]
    pub size: String,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Audio sample rate (20 ms chunks).
    #[arg(long, default_value_t = 24_000)]
    pub rate: u32,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Send no capture times (the server stamps arrival).
    #[arg(long)]
    pub unstamped: bool,
    /// Fall silent (no audio, no frames) for `--gap-secs` every this many seconds: underruns.
    #[arg(long)]
    pub gap_every: Option<f64>,
    #[arg(long, default_value_t = 1.0)]
    pub gap_secs: f64,
    /// An API token with the publish permission (sent as `Authorization: Bearer`).
    #[arg(long, env = "LOCKSTEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the web UI and API listen (WebRTC uses the same port number over UDP).
    #[arg(long, default_value = "127.0.0.1:8350")]
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "lockstep.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SimAudio {
    Pcma,
    Pcmu,
    Opus,
    L16,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct SimCameraArgs {
    #[arg(long, default_value = "127.0.0.1:8554")]
    pub listen: SocketAddr,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    #[arg(long, value_enum, default_value = "pcma")]
    pub audio: SimAudio,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    #[arg(long, default_value = "640x360")]
    pub size: String,
    /// Encode a few seconds once and loop them (for scale tests).
    #[arg(long)]
    pub replay: bool,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub audio_clock_ppm: f64,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub video_clock_ppm: f64,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub audio_offset_ms: f64,
    #[arg(long, default_value_t = 0.0)]
    pub jitter_ms: f64,
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    #[arg(long, default_value_t = 0.0)]
    pub duplicate: f64,
    #[arg(long, value_enum, default_value = "on")]
    pub sender_reports: OnOff,
    #[arg(long)]
    pub reboot_after: Option<f64>,
    #[arg(long)]
    pub drop_after: Option<f64>,
    #[arg(long)]
    pub no_backchannel: bool,
    /// Announce SPS/PPS only in the SDP, never in the stream (some cameras do).
    #[arg(long)]
    pub no_inband_parameter_sets: bool,
    #[arg(long, default_value_t = 0.0)]
    pub echo_delay_ms: f64,
    #[arg(long, default_value_t = -120.0, allow_negative_numbers = true)]
    pub echo_gain_db: f64,
    /// The microphone hears a person talking at the camera (a voice: 238 Hz and its harmonics,
    /// in syllables) instead of the once-a-second beep: the near end of a two-way talk.
    #[arg(long)]
    pub near_voice: bool,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// A file (.mp4, .mkv), an rtsp:// URL or a WHEP URL (http://…/api/whep/NAME).
    pub source: String,
    #[arg(long)]
    pub duration: Option<f64>,
    #[arg(long)]
    pub json: bool,
    /// An API token for a server that asks (sent as `Authorization: Bearer`).
    #[arg(long, env = "LOCKSTEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Command {
    /// The name as typed on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Demo(_) => "demo",
            Command::Serve(_) => "serve",
            Command::SimCamera(_) => "sim-camera",
            Command::Measure(_) => "measure",
            Command::PushSim(_) => "push-sim",
            Command::Discover(_) => "discover",
            Command::User(_) => "user",
            Command::Token(_) => "token",
            Command::Service(_) => "service",
        }
    }
}
