//! Two-way talk: a browser (or any WHIP client) speaks through a camera's speaker.
//!
//! `POST /api/talk/{name}` takes a WHIP offer (`live/talk.rs`); the talk session that holds the
//! camera's [`Floor`] has its speech sent to the camera's [`speaker`] task, which opens the
//! ONVIF backchannel (or Hikvision's ISAPI two-way audio) when speech comes and closes it after
//! `talk_hold_secs` of none. The camera says whether it can talk: `auto` asks it at start-up (a
//! DESCRIBE with the backchannel's Require, nothing held open), `isapi` asks its two-way audio
//! channels, `onvif` trusts the config until an attempt fails, `off` never.

pub mod floor;
pub mod isapi;
pub mod speaker;
pub mod speaker_path;
pub mod speech_queue;

pub use speaker::SPEAKER_RATE_HZ;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lockstep_rtsp::backchannel::BackchannelCodec;
use lockstep_rtsp::ingest::split_credentials;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::config::{CameraConfig, EchoMode, Talkback};
use crate::live::echo_stage::EchoPath;
use floor::Floor;
use lockstep_rtsp::ingest::LocalClock;
use speaker::{SpeakerTarget, Speech, ToSpeaker};
use speaker_path::{SpeakerError, Vendor};

/// A camera that did not answer the start-up question is asked again this often.
const PROBE_RETRY: Duration = Duration::from_secs(30);

/// What `/api/cameras/{name}` says under `talkback`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TalkStatus {
    /// `off`, `onvif`, `isapi` or `auto`, as configured.
    pub mode: &'static str,
    /// What the camera's microphone does while the speaker plays: `aec`, `half-duplex`, `off`.
    pub echo: &'static str,
    /// Whether the camera takes speech: `null` until known.
    pub available: Option<bool>,
    /// The backchannel's codec (`pcmu/8000`), once known.
    pub codec: Option<String>,
    /// Why it cannot talk, or why the last attempt failed.
    pub reason: Option<String>,
    /// The backchannel is open now.
    pub open: bool,
    /// The talk session holding the floor (an id, never a person).
    pub talker: Option<String>,
    /// The speaker → microphone delay the echo canceller measured, in ms.
    pub echo_loop_ms: Option<i64>,
    /// How much of the speaker's echo the canceller says it takes out, in dB.
    pub echo_removed_db: Option<f64>,
    /// The share of the camera's microphone, while its speaker played, that still carried sound
    /// after the echo stage (the visitor talking over the owner, or echo left).
    pub double_talk_share: Option<f64>,
    /// How long the last opening of the speaker's path took (press → ready), in ms.
    pub last_open_ms: Option<u64>,
    /// How long the speaker's path has been held open, in all, in seconds.
    pub open_secs: f64,
    pub opens: u64,
    /// Sessions the camera ended while someone talked.
    pub drops: u64,
    pub frames_sent: u64,
    /// Pauses dropped to bring the latency back after a wait, and speech dropped past the
    /// longest wait kept.
    pub dropped_quiet_frames: u64,
    pub dropped_speech_frames: u64,
}

/// Talk for one camera.
#[derive(Debug)]
pub struct CameraTalk {
    pub floor: Floor,
    /// `None` when talkback is off.
    speech: Option<mpsc::Sender<ToSpeaker>>,
    status: Arc<Mutex<TalkStatus>>,
    echo: Option<EchoPath>,
}

impl CameraTalk {
    /// Why this camera cannot take a talker now, if it cannot.
    pub fn refusal(&self) -> Option<String> {
        let status = self.lock();
        match (&self.speech, status.available) {
            (None, _) | (_, Some(false)) => Some(
                status
                    .reason
                    .clone()
                    .unwrap_or_else(|| "this camera cannot talk".into()),
            ),
            _ => None,
        }
    }

    /// Hands the floor holder's speech to the speaker; dropped when the speaker is behind by a
    /// second (late speech is worse than lost speech).
    pub fn say(&self, speech: Speech) {
        if let Some(sender) = &self.speech {
            let _ = sender.try_send(ToSpeaker::Speech(speech));
        }
    }

    /// `session` takes the floor (or says who holds it); the speaker gets ready at once.
    pub fn press(&self, session: &str) -> Result<(), String> {
        self.floor.claim(session)?;
        if let Some(sender) = &self.speech {
            let _ = sender.try_send(ToSpeaker::Press);
        }
        Ok(())
    }

    pub fn json(&self) -> Value {
        let mut status = self.lock().clone();
        status.talker = self.floor.holder();
        status.echo_loop_ms = self.echo.as_ref().and_then(EchoPath::loop_ms);
        status.echo_removed_db = self.echo.as_ref().and_then(EchoPath::erle_db);
        status.double_talk_share = self.echo.as_ref().and_then(EchoPath::double_talk_share);
        serde_json::to_value(status).unwrap_or(Value::Null)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TalkStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Talk for every RTSP camera; cameras come and go at run time.
#[derive(Debug, Default)]
pub struct Talk {
    cameras: std::sync::RwLock<HashMap<String, Arc<CameraTalk>>>,
}

impl Talk {
    /// Starts camera `camera`'s speaker task (and its start-up question, for `auto`); what its
    /// speaker plays goes into `echo`, stamped on `clock`.
    pub fn add(&self, camera: &CameraConfig, echo: &Option<EchoPath>, clock: LocalClock) {
        let talk = Arc::new(CameraTalk::start(camera, echo, clock));
        self.write().insert(camera.name.to_string(), talk);
    }

    /// Ends camera `name`'s talk: its speaker task stops with the last talk session.
    pub fn remove(&self, name: &str) {
        self.write().remove(name);
    }

    pub fn camera(&self, name: &str) -> Option<Arc<CameraTalk>> {
        self.cameras
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<CameraTalk>>> {
        self.cameras.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CameraTalk {
    fn start(camera: &CameraConfig, echo: &Option<EchoPath>, clock: LocalClock) -> CameraTalk {
        let mode = match camera.talkback {
            Talkback::Off => "off",
            Talkback::Onvif => "onvif",
            Talkback::Auto => "auto",
            Talkback::Isapi => "isapi",
        };
        let status = Arc::new(Mutex::new(TalkStatus {
            mode,
            echo: match camera.echo {
                EchoMode::Aec => "aec",
                EchoMode::HalfDuplex => "half-duplex",
                EchoMode::Off => "off",
            },
            ..TalkStatus::default()
        }));
        let target = speaker_target(camera).map(|(url, vendor, credentials)| SpeakerTarget {
            url,
            vendor,
            credentials,
            hold: Duration::from_secs(camera.talk_hold_secs.into()),
            played: echo.as_ref().map(|e| (e.reference.clone(), clock)),
        });
        let speech = match (camera.talkback, target) {
            (Talkback::Off, _) => {
                let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
                s.available = Some(false);
                s.reason = Some("talkback is \"off\" in this camera's config".into());
                None
            }
            (_, Err(e)) => {
                let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
                s.available = Some(false);
                s.reason = Some(format!("the camera's URL: {e}"));
                None
            }
            (mode, Ok(target)) => {
                if matches!(mode, Talkback::Auto | Talkback::Isapi) {
                    tokio::spawn(probe(target.clone(), status.clone()));
                }
                Some(speaker::spawn(target, status.clone()))
            }
        };
        CameraTalk {
            floor: Floor::default(),
            speech,
            status,
            echo: echo.clone(),
        }
    }
}

/// Where a camera takes speech: its stream URL, the vendor path, and the credentials (an ISAPI
/// URL's own, or the stream's).
fn speaker_target(
    camera: &CameraConfig,
) -> Result<(url::Url, Vendor, Option<lockstep_rtsp::auth::Credentials>), String> {
    let (url, credentials) = split_credentials(camera.url.for_connecting())?;
    if camera.talkback != Talkback::Isapi {
        return Ok((url, Vendor::Onvif, credentials));
    }
    let base = match &camera.isapi_url {
        Some(isapi) => isapi.for_connecting().to_owned(),
        None => format!(
            "http://{}/",
            url.host_str().ok_or("the camera's URL has no host")?
        ),
    };
    let (base, own) = split_credentials(&base)?;
    Ok((url, Vendor::Isapi { base }, own.or(credentials)))
}

/// Asks the camera whether it takes speech, until it answers.
async fn probe(target: SpeakerTarget, status: Arc<Mutex<TalkStatus>>) {
    loop {
        let answer = target
            .vendor
            .probe(&target.url, target.credentials.clone())
            .await;
        if answered(&status, answer) {
            return;
        }
        tokio::time::sleep(PROBE_RETRY).await;
        // The camera was removed: nobody reads the answer.
        if Arc::strong_count(&status) == 1 {
            return;
        }
    }
}

/// Writes the camera's answer into `status`; false when it did not answer (ask again).
fn answered(status: &Mutex<TalkStatus>, answer: Result<BackchannelCodec, SpeakerError>) -> bool {
    let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
    if s.available.is_some() {
        // A talker got there first: what the backchannel did is the better answer.
        return true;
    }
    match answer {
        Ok(codec) => {
            s.available = Some(true);
            s.codec = Some(speaker::codec_name(&codec));
            s.reason = None;
            true
        }
        Err(e) if e.is_definitive() => {
            s.available = Some(false);
            s.reason = Some(e.to_string());
            true
        }
        Err(e) => {
            s.reason = Some(format!("could not ask the camera yet: {e}"));
            false
        }
    }
}
