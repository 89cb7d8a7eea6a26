//! `lockstep.toml`: the configuration contract of `design/contracts.md`. Unknown keys and bad values are
//! rejected at start with the file, the line and the reason; camera credentials never leave the
//! [`RedactedUrl`] they are kept in.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::config_brand::{preset_url, Brand, StreamChoice};
use lockstep_rtsp::ingest::RtpTransport;
use lockstep_sync::LatencyProfile;
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// The most a manual trim may move audio: a camera further off is broken, not late.
pub const MAX_SYNC_OFFSET_MS: i64 = 5_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
    /// Sources that push their media to lockstep (`/api/push/NAME`): talking avatars.
    #[serde(default, rename = "push")]
    pub pushes: Vec<PushConfig>,
    /// The file this was read from: where cameras changed at run time are saved (`None`: the
    /// demo, a configuration given as text).
    #[serde(skip)]
    pub file: Option<PathBuf>,
    /// The text this was parsed from (where `file` is `None`, camera changes edit it in memory).
    #[serde(skip)]
    pub text: ConfigText,
}

/// A configuration's text, which may hold passwords: `Debug` says only its length.
#[derive(Clone, Default)]
pub struct ConfigText(pub String);

impl fmt::Debug for ConfigText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigText({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The UDP port every WebRTC peer shares (default: the HTTP port number).
    #[serde(default)]
    pub webrtc_port: Option<u16>,
    /// Addresses browsers reach the WebRTC port on, when not the listen address (NAT, a
    /// wildcard listen on a machine with several interfaces).
    #[serde(default)]
    pub webrtc_addresses: Vec<std::net::IpAddr>,
    /// `SO_REUSEPORT` on the HTTP listener (Unix): several servers may share the port.
    #[serde(default)]
    pub reuse_port: bool,
    /// TCP keepalive on every HTTP connection: idle time before the first probe, time between
    /// probes, probes unanswered before the connection is dropped.
    #[serde(default = "default_keepalive_idle")]
    pub tcp_keepalive_idle_secs: u32,
    #[serde(default = "default_keepalive_interval")]
    pub tcp_keepalive_interval_secs: u32,
    #[serde(default = "default_keepalive_count")]
    pub tcp_keepalive_count: u32,
    /// WebSocket heartbeat: a ping this often; two unanswered and the connection is dropped.
    #[serde(default = "default_ws_ping")]
    pub ws_ping_secs: u32,
    /// A WebSocket that sends nothing (pongs aside) for this long is closed.
    #[serde(default = "default_ws_idle")]
    pub ws_idle_timeout_secs: u32,
    /// A signalling session whose socket dropped keeps its viewers this long for a resume.
    #[serde(default = "default_ws_resume")]
    pub ws_resume_secs: u32,
    /// WebSocket connections one IP address may hold at once (its HTTP connections: 32 more).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// HTTP and WebSocket connections the server holds at once; more are refused with 503.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Host names the server answers to beside IP addresses, localhost and this machine's name
    /// (anything else is refused: DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://host[:port]`) whose pages may use the API and are granted CORS (a WHEP
    /// player served elsewhere); by default only the server's own pages may.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// `on` (the default): every route but the health probe and the login page asks who is
    /// calling. `off`: nobody is asked — accepted only when the server listens on loopback.
    #[serde(default)]
    pub auth: AuthMode,
    /// A browser session lasts this long after its login.
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
    /// HTTPS: `self-signed` makes (once) and keeps a certificate for this machine's names and
    /// addresses in the storage folder; or give `tls_cert` and `tls_key` (PEM files).
    #[serde(default)]
    pub tls: TlsMode,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the audit log and login
    /// limits); from anyone else the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The RTSP restream's address (`rtsp://ADDR/{camera}`); off when absent.
    #[serde(default)]
    pub rtsp_listen: Option<SocketAddr>,
    /// An RTSP client heard from (a request, RTCP) less often than this is dropped.
    #[serde(default = "default_rtsp_timeout")]
    pub rtsp_timeout_secs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    #[default]
    Off,
    SelfSigned,
}

impl ServerConfig {
    /// Whether the server speaks HTTPS.
    pub fn tls_on(&self) -> bool {
        self.tls == TlsMode::SelfSigned || self.tls_cert.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    On,
    Off,
}

fn default_session_hours() -> u32 {
    7 * 24
}

fn default_keepalive_idle() -> u32 {
    600
}
fn default_keepalive_interval() -> u32 {
    30
}
fn default_keepalive_count() -> u32 {
    3
}
fn default_ws_ping() -> u32 {
    15
}
fn default_ws_idle() -> u32 {
    300
}
fn default_ws_resume() -> u32 {
    60
}
fn default_max_connections_per_ip() -> u32 {
    64
}
fn default_rtsp_timeout() -> u32 {
    60
}
fn default_max_connections() -> u32 {
    10_000
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8350))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            webrtc_port: None,
            webrtc_addresses: Vec::new(),
            reuse_port: false,
            tcp_keepalive_idle_secs: default_keepalive_idle(),
            tcp_keepalive_interval_secs: default_keepalive_interval(),
            tcp_keepalive_count: default_keepalive_count(),
            ws_ping_secs: default_ws_ping(),
            ws_idle_timeout_secs: default_ws_idle(),
            ws_resume_secs: default_ws_resume(),
            max_connections_per_ip: default_max_connections_per_ip(),
            max_connections: default_max_connections(),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            auth: AuthMode::On,
            session_hours: default_session_hours(),
            tls: TlsMode::Off,
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            rtsp_listen: None,
            rtsp_timeout_secs: default_rtsp_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_retain_days")]
    pub retain_days: u32,
    #[serde(default = "default_max_disk")]
    pub max_disk: ByteSize,
    /// Length of a segment file (it ends at the first keyframe after this), 2 to 600 s.
    #[serde(default = "default_segment_secs")]
    pub segment_secs: u32,
}

/// `lockstep-data` beside where lockstep runs; on Windows `%ProgramData%\lockstep\data`, the
/// machine-wide place for a program's data (a service's working folder is System32).
fn default_dir() -> PathBuf {
    if cfg!(windows) {
        crate::service::folder().join("data")
    } else {
        PathBuf::from("lockstep-data")
    }
}
fn default_retain_days() -> u32 {
    30
}
fn default_max_disk() -> ByteSize {
    ByteSize(500 * 1_000_000_000)
}
fn default_segment_secs() -> u32 {
    60
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: default_dir(),
            retain_days: default_retain_days(),
            max_disk: default_max_disk(),
            segment_secs: default_segment_secs(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    Continuous,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Talkback {
    Off,
    Onvif,
    /// Hikvision's two-way audio over ISAPI (HTTP), for cameras without an ONVIF backchannel.
    Isapi,
    Auto,
}

/// What the camera's microphone does while someone talks through its speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EchoMode {
    /// The speaker's echo is cancelled (AEC3), the camera's own sound kept.
    Aec,
    /// The microphone is muted while the speaker plays (and a second after).
    HalfDuplex,
    /// Left as it is.
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "CameraTable")]
pub struct CameraConfig {
    pub name: CameraName,
    /// The camera's URL: given, or made from its brand preset.
    pub url: RedactedUrl,
    /// Its substream (a smaller, usually H.264 stream of the same camera): what the grid and
    /// browsers that cannot play the main stream watch. Never recorded.
    pub substream_url: Option<RedactedUrl>,
    pub audio: bool,
    pub record: RecordMode,
    pub record_audio: bool,
    pub talkback: Talkback,
    /// Where `talkback = "isapi"` speaks (`http://host[:port]`; default: the camera's host on
    /// port 80, with the stream's credentials unless this URL has its own).
    pub isapi_url: Option<RedactedUrl>,
    /// How long the backchannel stays open after the last speech (1–300 s): a press soon
    /// after finds it open; a backchannel held longer locks doorbells and other apps.
    pub talk_hold_secs: u32,
    pub echo: EchoMode,
    pub sync_offset_ms: i64,
    pub latency: LatencyProfile,
    /// How the camera's media travels: TCP interleaved (default), UDP, or UDP with TCP as
    /// the fallback.
    pub transport: RtpTransport,
}

/// A `[[camera]]` table as written: a `url`, or a `brand` with `host` (and credentials,
/// `channel`, `stream`, `substream`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraTable {
    name: CameraName,
    url: Option<RedactedUrl>,
    substream_url: Option<RedactedUrl>,
    /// With a brand preset: also read the preset's substream.
    #[serde(default)]
    substream: bool,
    brand: Option<Brand>,
    host: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// The password read from this file (its first line), so the config need not hold it.
    password_file: Option<std::path::PathBuf>,
    /// The password read from this environment variable.
    password_env: Option<String>,
    #[serde(default = "first_channel")]
    channel: u32,
    #[serde(default)]
    stream: StreamChoice,
    #[serde(default = "yes")]
    audio: bool,
    #[serde(default = "continuous")]
    record: RecordMode,
    #[serde(default = "yes")]
    record_audio: bool,
    #[serde(default = "auto")]
    talkback: Talkback,
    #[serde(default, deserialize_with = "isapi_url")]
    isapi_url: Option<RedactedUrl>,
    #[serde(default = "talk_hold", deserialize_with = "talk_hold_secs")]
    talk_hold_secs: u32,
    #[serde(default = "aec")]
    echo: EchoMode,
    #[serde(default, deserialize_with = "sync_offset")]
    sync_offset_ms: i64,
    #[serde(default, deserialize_with = "latency")]
    latency: LatencyProfile,
    #[serde(default, deserialize_with = "transport")]
    transport: RtpTransport,
}

fn first_channel() -> u32 {
    1
}

impl TryFrom<CameraTable> for CameraConfig {
    type Error = String;
    fn try_from(mut t: CameraTable) -> Result<Self, String> {
        let kept_apart = kept_apart_password(&t)?;
        if let (Some(password), Some(url)) = (&kept_apart, &mut t.url) {
            if url.0.username().is_empty() || url.0.password().is_some() {
                return Err(format!(
                    "camera {}: with password_file or password_env the url gives the user and \
                     no password (rtsp://admin@host/...)",
                    t.name.0
                ));
            }
            let _ = url.0.set_password(Some(password));
        }
        if let (Some(password), Some(sub)) = (&kept_apart, &mut t.substream_url) {
            if !sub.0.username().is_empty() && sub.0.password().is_none() {
                let _ = sub.0.set_password(Some(password));
            }
        }
        if t.url.is_none() {
            t.password = t.password.or(kept_apart);
        }
        let preset_keys =
            t.brand.is_some() || t.host.is_some() || t.username.is_some() || t.password.is_some();
        let substream_url = substream_url(&t)?;
        if t.isapi_url.is_some() && t.talkback != Talkback::Isapi {
            return Err(format!(
                "camera {}: isapi_url is read with talkback = \"isapi\" only",
                t.name.0
            ));
        }
        let url = match (t.url, t.brand, t.host) {
            (Some(_), _, _) if preset_keys => {
                return Err(format!(
                    "camera {}: give either url or brand + host, not both",
                    t.name.0
                ))
            }
            (Some(url), ..) => url,
            (None, Some(brand), Some(host)) => RedactedUrl(
                preset_url(
                    brand,
                    &host,
                    t.username.as_deref(),
                    t.password.as_deref(),
                    t.channel,
                    t.stream,
                )
                .map_err(|e| format!("camera {}: {e}", t.name.0))?,
            ),
            (None, Some(_), None) => return Err(format!("camera {}: brand needs host", t.name.0)),
            (None, None, _) => {
                return Err(format!(
                    "camera {}: missing field `url` (or brand + host)",
                    t.name.0
                ))
            }
        };
        Ok(CameraConfig {
            name: t.name,
            url,
            substream_url,
            audio: t.audio,
            record: t.record,
            record_audio: t.record_audio,
            talkback: t.talkback,
            isapi_url: t.isapi_url,
            talk_hold_secs: t.talk_hold_secs,
            echo: t.echo,
            sync_offset_ms: t.sync_offset_ms,
            latency: t.latency,
            transport: t.transport,
        })
    }
}

/// The password from `password_file` or `password_env`, if the camera gives one (only one of
/// them, and not beside `password`).
fn kept_apart_password(t: &CameraTable) -> Result<Option<String>, String> {
    let name = &t.name.0;
    let given = [
        t.password.is_some(),
        t.password_file.is_some(),
        t.password_env.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() > 1 {
        return Err(format!(
            "camera {name}: give one of password, password_file and password_env"
        ));
    }
    if let Some(file) = &t.password_file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "camera {name}: cannot read password_file {}: {e}",
                file.display()
            )
        })?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
    }
    if let Some(var) = &t.password_env {
        return std::env::var(var)
            .map(Some)
            .map_err(|_| format!("camera {name}: password_env {var} is not set"));
    }
    Ok(None)
}

/// The substream's URL: `substream_url` as given, or the brand preset's substream when
/// `substream = true`.
fn substream_url(t: &CameraTable) -> Result<Option<RedactedUrl>, String> {
    let name = &t.name.0;
    match (&t.substream_url, t.substream, t.brand, &t.host) {
        (Some(_), true, ..) => Err(format!(
            "camera {name}: give substream_url or substream = true, not both"
        )),
        (Some(url), false, ..) => Ok(Some(url.clone())),
        (None, false, ..) => Ok(None),
        (None, true, _, _) if t.stream == StreamChoice::Sub => Err(format!(
            "camera {name}: substream = true reads the substream beside the main stream, and \
             stream = \"sub\" already makes the substream the camera's stream"
        )),
        (None, true, Some(brand), Some(host)) => preset_url(
            brand,
            host,
            t.username.as_deref(),
            t.password.as_deref(),
            t.channel,
            StreamChoice::Sub,
        )
        .map(|url| Some(RedactedUrl(url)))
        .map_err(|e| format!("camera {name}: {e}")),
        (None, true, ..) => Err(format!(
            "camera {name}: substream = true takes the substream from a brand preset (brand + \
             host); with url, give substream_url"
        )),
    }
}

/// A push source: a producer (a talking avatar) sends PCM and frames over a WebSocket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    pub name: CameraName,
    #[serde(default = "yes")]
    pub audio: bool,
    /// Avatars are not recorded unless asked (cameras are).
    #[serde(default = "off")]
    pub record: RecordMode,
    #[serde(default = "yes")]
    pub record_audio: bool,
    /// How far behind its capture time the media goes out: `low` 50 ms, `balanced` 120 ms,
    /// `smooth` 400 ms (room for a producer's jitter).
    #[serde(default, deserialize_with = "latency")]
    pub latency: LatencyProfile,
}

fn off() -> RecordMode {
    RecordMode::Off
}

fn yes() -> bool {
    true
}
fn continuous() -> RecordMode {
    RecordMode::Continuous
}
fn auto() -> Talkback {
    Talkback::Auto
}

fn aec() -> EchoMode {
    EchoMode::Aec
}

fn talk_hold() -> u32 {
    5
}

fn talk_hold_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let secs = u32::deserialize(d)?;
    if !(1..=300).contains(&secs) {
        return Err(de::Error::custom(format!(
            "talk_hold_secs {secs} is outside 1–300"
        )));
    }
    Ok(secs)
}

fn sync_offset<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let ms = i64::deserialize(d)?;
    if ms.abs() > MAX_SYNC_OFFSET_MS {
        return Err(de::Error::custom(format!(
            "sync_offset_ms {ms} is beyond ±{MAX_SYNC_OFFSET_MS}"
        )));
    }
    Ok(ms)
}

fn latency<'de, D: Deserializer<'de>>(d: D) -> Result<LatencyProfile, D::Error> {
    String::deserialize(d)?.parse().map_err(de::Error::custom)
}

fn transport<'de, D: Deserializer<'de>>(d: D) -> Result<RtpTransport, D::Error> {
    String::deserialize(d)?.parse().map_err(de::Error::custom)
}

/// A camera name: `[a-z0-9-]`, 1 to 63 characters, not starting or ending with `-` (it appears
/// in URLs and file paths).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CameraName(String);

impl CameraName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CameraName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CameraName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if valid {
            Ok(CameraName(s.to_owned()))
        } else {
            Err(format!(
                "camera name {s:?} must be 1-63 characters of a-z, 0-9 and '-', not starting or \
                 ending with '-'"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for CameraName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// A camera URL whose credentials never show: `Display` and `Debug` print
/// `rtsp://***:***@host/path` (and `password=***` in a path or query, `redact.rs`); only [`RedactedUrl::for_connecting`] gives the real URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(url::Url);

impl RedactedUrl {
    /// The URL with its credentials, for the RTSP client only: never log or show it.
    pub fn for_connecting(&self) -> &str {
        self.0.as_str()
    }

    fn redacted(&self) -> String {
        lockstep_rtsp::redact::redacted_url(&self.0)
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedactedUrl({})", self.redacted())
    }
}

impl FromStr for RedactedUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Errors must not echo the input: it may hold a password.
        let url = url::Url::parse(s).map_err(|e| format!("camera url is not a valid URL ({e})"))?;
        match url.scheme() {
            "rtsp" | "rtsps" => {}
            other => {
                return Err(format!(
                    "camera url scheme {other:?} is not supported (rtsp:// or rtsps://)"
                ))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("camera url has no host".into());
        }
        Ok(RedactedUrl(url))
    }
}

/// `isapi_url`: an `http://` URL (ISAPI over TLS is not spoken yet), credentials redacted.
fn isapi_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RedactedUrl>, D::Error> {
    let text = String::deserialize(d)?;
    // Errors must not echo the input: it may hold a password.
    let url = url::Url::parse(&text)
        .map_err(|e| de::Error::custom(format!("isapi_url is not a valid URL ({e})")))?;
    if url.scheme() != "http" {
        return Err(de::Error::custom(format!(
            "isapi_url scheme {:?} is not supported (http://host[:port])",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(de::Error::custom("isapi_url has no host"));
    }
    Ok(Some(RedactedUrl(url)))
}

impl<'de> Deserialize<'de> for RedactedUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// A size like `500GB`, `2 TiB` or `750000000` (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("size {s:?} must start with a whole number"))?;
        let multiplier: u64 = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            "KIB" => 1 << 10,
            "MIB" => 1 << 20,
            "GIB" => 1 << 30,
            "TIB" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {s:?} (KB, MB, GB, TB, KiB…)"
                ))
            }
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(de::Error::custom),
        }
    }
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {reason}")]
    Invalid {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Inconsistent { path: String, reason: String },
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Config {
    /// What the configuration says, for a person to check (credentials redacted).
    pub fn summary(&self) -> String {
        let mut out = format!(
            "listen {}; storage {} (keep {} days, at most {} bytes)\n",
            self.server.listen,
            self.storage.dir.display(),
            self.storage.retain_days,
            self.storage.max_disk.0
        );
        for c in &self.cameras {
            let substream = c
                .substream_url
                .as_ref()
                .map(|u| format!(" (substream {u})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "camera {} at {}{substream}: audio {}, record {:?}{}, talkback {:?}, sync offset \
                 {} ms, latency {}, transport {}\n",
                c.name,
                c.url,
                if c.audio { "on" } else { "off" },
                c.record,
                if c.record_audio {
                    ""
                } else {
                    " (silent video)"
                },
                c.talkback,
                c.sync_offset_ms,
                c.latency,
                c.transport.as_str()
            ));
        }
        for p in &self.pushes {
            out.push_str(&format!(
                "push source {}: audio {}, record {:?}, latency {}\n",
                p.name,
                if p.audio { "on" } else { "off" },
                p.record,
                p.latency
            ));
        }
        out
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut config = Config::parse(&text, &shown)?;
        config.file = Some(path.to_path_buf());
        if holds_passwords(&text) && readable_by_others(path) {
            tracing::warn!(
                "{shown} holds camera passwords and other users can read it: chmod 600 it, or \
                 give the passwords as password_file or password_env"
            );
        }
        Ok(config)
    }

    /// Parses the text of `path` (named in errors).
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            line: e.span().map_or(1, |span| line_of(text, span.start)),
            reason: e.message().to_owned(),
        })?;
        let mut seen = std::collections::HashSet::new();
        let names = config.cameras.iter().map(|c| &c.name);
        for name in names.chain(config.pushes.iter().map(|p| &p.name)) {
            if !seen.insert(name.as_str()) {
                let line = text
                    .rfind(&format!("\"{name}\""))
                    .map_or(1, |offset| line_of(text, offset));
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    line,
                    reason: format!("camera name {:?} is used twice", name.as_str()),
                });
            }
        }
        let server = &config.server;
        for (key, value, range) in [
            ("ws_ping_secs", server.ws_ping_secs, 1..=300),
            (
                "ws_idle_timeout_secs",
                server.ws_idle_timeout_secs,
                5..=86_400,
            ),
            (
                "max_connections_per_ip",
                server.max_connections_per_ip,
                1..=100_000,
            ),
            ("max_connections", server.max_connections, 16..=1_000_000),
            (
                "tcp_keepalive_idle_secs",
                server.tcp_keepalive_idle_secs,
                1..=86_400,
            ),
            (
                "tcp_keepalive_interval_secs",
                server.tcp_keepalive_interval_secs,
                1..=3_600,
            ),
            ("tcp_keepalive_count", server.tcp_keepalive_count, 1..=100),
            ("rtsp_timeout_secs", server.rtsp_timeout_secs, 5..=3_600),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::Inconsistent {
                    path: path.to_owned(),
                    reason: format!(
                        "server.{key} is {value}; it must be {} to {}",
                        range.start(),
                        range.end()
                    ),
                });
            }
        }
        let inconsistent = |reason: String| ConfigError::Inconsistent {
            path: path.to_owned(),
            reason,
        };
        for host in &server.allowed_hosts {
            let bare = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !bare {
                return Err(inconsistent(format!(
                    "server.allowed_hosts has {host:?}; give a host name only (no scheme, port \
                     or path), e.g. \"cams.example.lan\""
                )));
            }
        }
        if server.auth == AuthMode::Off && !server.listen.ip().is_loopback() {
            return Err(inconsistent(format!(
                "server.auth is \"off\" but server.listen is {}: without authentication the \
                 server listens on loopback only (127.0.0.1 or ::1); create users instead \
                 (`lockstep user add NAME --role admin`)",
                server.listen
            )));
        }
        if let Some(rtsp) = server.rtsp_listen {
            if server.auth == AuthMode::Off && !rtsp.ip().is_loopback() {
                return Err(inconsistent(format!(
                    "server.auth is \"off\" but server.rtsp_listen is {rtsp}: without \
                     authentication the restream listens on loopback only"
                )));
            }
            if rtsp == server.listen {
                return Err(inconsistent(format!(
                    "server.rtsp_listen and server.listen are both {rtsp}: give the restream \
                     its own port (8554 is RTSP's usual one)"
                )));
            }
        }
        match (&server.tls_cert, &server.tls_key, server.tls) {
            (Some(_), Some(_), TlsMode::Off) | (None, None, _) => {}
            (Some(_), Some(_), TlsMode::SelfSigned) => {
                return Err(inconsistent(
                    "server.tls = \"self-signed\" and server.tls_cert: give one of them".into(),
                ))
            }
            _ => {
                return Err(inconsistent(
                    "server.tls_cert and server.tls_key go together (PEM files)".into(),
                ))
            }
        }
        if !(1..=24 * 365).contains(&server.session_hours) {
            return Err(inconsistent(format!(
                "server.session_hours is {}; it must be 1 to 8760",
                server.session_hours
            )));
        }
        for origin in &server.allowed_origins {
            let url = url::Url::parse(origin).ok();
            let bare = url.as_ref().is_some_and(|u| {
                ["http", "https"].contains(&u.scheme())
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && u.query().is_none()
                    && !origin.ends_with('/')
            });
            if !bare {
                return Err(inconsistent(format!(
                    "server.allowed_origins has {origin:?}; give an origin: scheme, host and \
                     port only, e.g. \"https://dashboard.lan:8443\""
                )));
            }
        }
        if config.storage.retain_days == 0 {
            return Err(ConfigError::Inconsistent {
                path: path.to_owned(),
                reason: "storage.retain_days must be at least 1".into(),
            });
        }
        if !(2..=600).contains(&config.storage.segment_secs) {
            return Err(ConfigError::Inconsistent {
                path: path.to_owned(),
                reason: format!(
                    "storage.segment_secs is {}; it must be 2 to 600",
                    config.storage.segment_secs
                ),
            });
        }
        config.text = ConfigText(text.to_owned());
        Ok(config)
    }
}

/// Whether the config text holds a password (a `password` key, or one in a URL's userinfo).
fn holds_passwords(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("password ") || line.starts_with("password=") || {
            // rtsp://user:password@host
            line.split("://")
                .nth(1)
                .and_then(|rest| rest.split(['/', '"', '\'']).next())
                .and_then(|authority| authority.split_once('@'))
                .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        }
    })
}

/// Whether users other than the owner may read `path` (Unix permissions; elsewhere, no).
fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample the Windows zip carries (windows/package.sh) is a configuration we accept.
    #[test]
    fn the_windows_sample_config_is_valid() {
        let config = Config::parse(include_str!("../../../windows/lockstep.toml"), "sample")
            .expect("windows/lockstep.toml parses");
        assert_eq!(config.cameras.len(), 1);
        assert_eq!(config.server.listen.port(), 8350);
    }

    const FULL: &str = r#"
[server]
listen = "127.0.0.1:9000"
[storage]
dir = "/var/lib/lockstep"
retain_days = 7
max_disk = "2TB"
[[camera]]
name = "front-door"
url = "rtsp://admin:s3cret@192.168.1.10:554/stream1"
audio = true
record = "continuous"
record_audio = false
talkback = "onvif"
talk_hold_secs = 2
echo = "half-duplex"
sync_offset_ms = -40
latency = "balanced"
transport = "udp"
[[camera]]
name = "garage"
url = "rtsp://192.168.1.11/live"
"#;

    #[test]
    fn isapi_talkback_takes_an_http_url_and_only_with_isapi() {
        let camera = |extra: &str| {
            format!("[[camera]]\nname = \"door\"\nurl = \"rtsp://10.0.0.9/live\"\n{extra}")
        };
        let c = Config::parse(
            &camera("talkback = \"isapi\"\nisapi_url = \"http://admin:pw@10.0.0.9:8080\"\n"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.cameras[0].talkback, Talkback::Isapi);
        let shown = format!("{:?}", c.cameras[0].isapi_url);
        assert!(
            shown.contains("10.0.0.9:8080") && !shown.contains("pw"),
            "{shown}"
        );
        let e = Config::parse(&camera("isapi_url = \"http://10.0.0.9\"\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("isapi_url is read with talkback = \"isapi\" only"),
            "{e}"
        );
        let e = Config::parse(
            &camera("talkback = \"isapi\"\nisapi_url = \"https://admin:pw@10.0.0.9\"\n"),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("isapi_url scheme \"https\"") && !e.contains("pw"),
            "{e}"
        );
    }

    #[test]
    fn reads_the_contract_with_defaults() {
        let c = Config::parse(FULL, "lockstep.toml").unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.storage.max_disk, ByteSize(2_000_000_000_000));
        assert_eq!(c.cameras.len(), 2);
        let front = &c.cameras[0];
        assert!(!front.record_audio);
        assert_eq!(front.talkback, Talkback::Onvif);
        assert_eq!(front.talk_hold_secs, 2);
        assert_eq!(c.cameras[1].talk_hold_secs, 5);
        assert_eq!(front.echo, EchoMode::HalfDuplex);
        assert_eq!(c.cameras[1].echo, EchoMode::Aec);
        assert_eq!(front.sync_offset_ms, -40);
        assert_eq!(front.latency, LatencyProfile::Balanced);
        assert_eq!(front.transport, RtpTransport::Udp);
        let garage = &c.cameras[1];
        assert!(garage.audio && garage.record_audio);
        assert_eq!(garage.transport, RtpTransport::Tcp);
        assert_eq!(garage.record, RecordMode::Continuous);
        assert_eq!(garage.latency, LatencyProfile::Low);
        let empty = Config::parse("", "x.toml").unwrap();
        assert_eq!(empty.server.listen, default_listen());
        assert!(empty.cameras.is_empty());
    }

    #[test]
    fn credentials_never_show() {
        let c = Config::parse(FULL, "lockstep.toml").unwrap();
        let url = &c.cameras[0].url;
        assert_eq!(url.to_string(), "rtsp://***:***@192.168.1.10:554/stream1");
        assert!(!format!("{:?}", c).contains("s3cret"));
        assert!(!format!("{:?}", c).contains("admin"));
        assert_eq!(url.0.password(), Some("s3cret"));
        // A bad URL's error does not echo it.
        let bad = FULL.replace(
            "rtsp://admin:s3cret@192.168.1.10:554",
            "http://admin:s3cret@h",
        );
        let err = Config::parse(&bad, "lockstep.toml")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("line 10") && err.contains("http"), "{err}");
    }

    #[test]
    fn a_brand_preset_makes_the_url() {
        let text = "[[camera]]\nname = \"door\"\nbrand = \"reolink\"\nhost = \"192.168.1.30\"\n\
                    username = \"admin\"\npassword = \"s3cret\"\nstream = \"sub\"\n";
        let config = Config::parse(text, "cams.toml").unwrap();
        let url = &config.cameras[0].url;
        assert_eq!(
            url.for_connecting(),
            "rtsp://admin:s3cret@192.168.1.30:554/h264Preview_01_sub"
        );
        assert_eq!(
            url.to_string(),
            "rtsp://***:***@192.168.1.30:554/h264Preview_01_sub"
        );
    }

    #[test]
    fn a_substream_comes_from_its_url_or_the_brand_preset() {
        let text = "[[camera]]\nname = \"door\"\nbrand = \"hikvision\"\nhost = \"192.168.1.31\"\n\
                    username = \"admin\"\npassword = \"s3cret\"\nsubstream = true\n\
                    [[camera]]\nname = \"yard\"\nurl = \"rtsp://h/main\"\n\
                    substream_url = \"rtsp://u:p@h/sub\"\n[[camera]]\nname = \"gate\"\n\
                    url = \"rtsp://h/\"\n";
        let config = Config::parse(text, "cams.toml").unwrap();
        let sub = |i: usize| config.cameras[i].substream_url.as_ref();
        assert_eq!(
            config.cameras[0].url.for_connecting(),
            "rtsp://admin:s3cret@192.168.1.31:554/Streaming/Channels/101"
        );
        assert_eq!(
            sub(0).map(RedactedUrl::for_connecting),
            Some("rtsp://admin:s3cret@192.168.1.31:554/Streaming/Channels/102")
        );
        assert_eq!(
            sub(1).map(ToString::to_string).as_deref(),
            Some("rtsp://***:***@h/sub")
        );
        assert!(sub(2).is_none());
        assert!(config
            .summary()
            .contains("(substream rtsp://***:***@h/sub)"));
    }

    #[test]
    fn a_password_can_live_in_a_file_or_the_environment() {
        let file = std::env::temp_dir().join(format!("lockstep-pw-{}", std::process::id()));
        std::fs::write(&file, "p@ss:w/rd\n").unwrap();
        let text = format!(
            "[[camera]]\nname = \"a\"\nurl = \"rtsp://admin@h/x\"\npassword_file = '{}'\n\
             [[camera]]\nname = \"b\"\nbrand = \"tapo\"\nhost = \"h\"\nusername = \"u\"\n\
             password_env = \"LOCKSTEP_TEST_CAMERA_PASSWORD\"\n",
            file.display()
        );
        std::env::set_var("LOCKSTEP_TEST_CAMERA_PASSWORD", "envpass");
        let config = Config::parse(&text, "cams.toml").unwrap();
        let (a, b) = (&config.cameras[0].url, &config.cameras[1].url);
        assert_eq!(a.for_connecting(), "rtsp://admin:p%40ss%3Aw%2Frd@h/x");
        assert_eq!(a.to_string(), "rtsp://***:***@h/x");
        assert!(b.for_connecting().contains("u:envpass@h"), "{b:?}");
        for (extra, says) in [("password = \"x\"\n", "one of password"), ("", "not set")] {
            let text = format!(
                "[[camera]]\nname = \"c\"\nbrand = \"tapo\"\nhost = \"h\"\n{extra}\
                 password_env = \"LOCKSTEP_TEST_UNSET_PASSWORD\"\n"
            );
            let err = Config::parse(&text, "cams.toml").unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
        let with_password = "[[camera]]\nname = \"d\"\nurl = \"rtsp://admin:x@h/\"\n\
                             password_env = \"LOCKSTEP_TEST_CAMERA_PASSWORD\"\n";
        let err = Config::parse(with_password, "cams.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no password"), "{err}");
        std::fs::remove_file(&file).unwrap();
        assert!(
            holds_passwords("url = \"rtsp://admin:x@h/\"") && holds_passwords("password = \"x\"")
        );
        assert!(!holds_passwords(
            "url = \"rtsp://admin@h:554/\"\npassword_file = \"/p\""
        ));
    }

    #[test]
    fn errors_name_the_file_line_and_reason() {
        let cases = [
            ("[server]\nlisten = \"127.0.0.1:8350\"\nport = 1\n", "line 3", "unknown field `port`"),
            ("[[camera]]\nname = \"Front Door\"\nurl = \"rtsp://h/\"\n", "line 2", "a-z"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\nlatency = \"fast\"\n", "line 4", "\"fast\""),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\nrecord = \"always\"\n", "line 4", "always"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\ntransport = \"quic\"\n", "line 4", "\"quic\" is not one of"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\nsync_offset_ms = 9000\n", "line 4", "beyond"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\ntalk_hold_secs = 0\n", "line 4", "outside 1–300"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\necho = \"cancel\"\n", "line 4", "half-duplex"),
            ("[storage]\nmax_disk = \"5 parsecs\"\n", "line 2", "PARSECS"),
            ("[[camera]]\nname = \"a\"\n", "line 1", "missing field `url`"),
            ("[[camera]]\nname = \"a\"\nbrand = \"hikvision\"\n", "line 1", "brand needs host"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\nhost = \"h\"\n", "line 1", "not both"),
            ("[[camera]]\nname = \"a\"\nbrand = \"acme\"\nhost = \"h\"\n", "line 3", "acme"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\npassword = \"p\"\n", "line 1", "not both"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\nsubstream = true\n", "line 1", "give substream_url"),
            ("[[camera]]\nname = \"a\"\nbrand = \"tapo\"\nhost = \"h\"\nstream = \"sub\"\nsubstream = true\n", "line 1", "already makes"),
            ("[[camera]]\nname = \"a\"\nbrand = \"tapo\"\nhost = \"h\"\nsubstream = true\nsubstream_url = \"rtsp://h/2\"\n", "line 1", "not both"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\nsubstream_url = \"http://h/2\"\n", "line 4", "scheme"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\n[[camera]]\nname = \"a\"\nurl = \"rtsp://i/\"\n", "line 5", "used twice"),
            ("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\n[[push]]\nname = \"a\"\n", "line 5", "used twice"),
            ("[server]\nws_ping_secs = 0\n", "server.ws_ping_secs is 0", "1 to 300"),
            ("[server]\nallowed_hosts = [\"http://cams.lan\"]\n", "allowed_hosts", "host name only"),
            ("[server]\nallowed_origins = [\"https://d.lan/app\"]\n", "allowed_origins", "scheme, host and"),
            ("[server]\nallowed_origins = [\"*\"]\n", "allowed_origins", "give an origin"),
            ("[server]\nlisten = \"0.0.0.0:8350\"\nauth = \"off\"\n", "auth", "loopback only"),
            ("[server]\nsession_hours = 0\n", "session_hours", "1 to 8760"),
            ("[server]\ntls_cert = \"c.pem\"\n", "tls_key", "go together"),
            ("[server]\ntls = \"self-signed\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n", "self-signed", "one of them"),
            ("[server]\ntls = \"on\"\n", "line 2", "self-signed"),
            ("[server]\nauth = \"maybe\"\n", "line 2", "expected `on` or `off`"),
            ("[server]\nauth = \"off\"\nrtsp_listen = \"0.0.0.0:8554\"\n", "rtsp_listen", "loopback only"),
            ("[server]\nrtsp_listen = \"127.0.0.1:8350\"\n", "rtsp_listen", "its own port"),
            ("[server]\nrtsp_listen = \"8554\"\n", "line 2", "invalid socket address"),
            ("[server]\nrtsp_timeout_secs = 1\n", "rtsp_timeout_secs is 1", "5 to 3600"),
        ];
        for (text, line, reason) in cases {
            let err = Config::parse(text, "cams.toml").unwrap_err().to_string();
            assert!(err.starts_with("cams.toml: "), "{err}");
            assert!(err.contains(line), "{text:?}: {err}");
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }
}
