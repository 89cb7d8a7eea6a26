//! The ways speech reaches a camera's speaker, behind one trait: the ONVIF backchannel (RTP on
//! an RTSP session) and Hikvision's ISAPI two-way audio (raw G.711 over HTTP). The speaker task
//! opens one when someone talks, sends it 20 ms packets, and closes it after the hold; what
//! differs per vendor stays in its own file.

use std::time::Instant;

use futures::future::BoxFuture;
use lockstep_rtsp::auth::Credentials;
use lockstep_rtsp::backchannel::{Backchannel, BackchannelCodec, BackchannelError};

use super::isapi::{self, IsapiTalk};
use crate::camera_http::CameraHttp;

/// The session has ended (the camera closed it, or the connection failed); its reason comes
/// from [`SpeakerPath::close`].
#[derive(Debug, Clone, Copy)]
pub struct Ended;

/// The instant a packet's first sample plays, or the session's end.
pub type Sent = Result<Instant, Ended>;

/// An open way to a camera's speaker.
pub trait SpeakerPath: Send + std::fmt::Debug {
    /// What the speaker takes.
    fn codec(&self) -> &BackchannelCodec;

    /// Queues one packet of encoded audio holding `samples` samples, played from now (or
    /// right after the previous packet): the instant its first sample plays.
    fn send(&mut self, payload: &[u8], samples: u32) -> Sent;

    /// Ends the session once what is queued went out; its end, or why it ended before.
    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), String>>;
}

impl SpeakerPath for Backchannel {
    fn codec(&self) -> &BackchannelCodec {
        Backchannel::codec(self)
    }

    fn send(&mut self, payload: &[u8], samples: u32) -> Sent {
        Backchannel::send(self, payload, samples).map_err(|_| Ended)
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move { Backchannel::close(*self).await.map_err(|e| e.to_string()) })
    }
}

/// Why a camera's speaker could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// The camera has no way in for speech, or would not say so: it cannot talk.
    #[error("{0}")]
    NotOffered(String),
    /// It takes speech in an encoding lockstep does not write yet: it cannot talk.
    #[error(
        "the camera's speaker takes {0}; lockstep sends G.711 (PCMU/PCMA) and G.726-32 so far"
    )]
    Codec(String),
    /// Anything else: the next attempt may pass.
    #[error("{0}")]
    Failed(String),
}

impl SpeakerError {
    /// The camera said it cannot talk (not worth asking again).
    pub fn is_definitive(&self) -> bool {
        matches!(self, SpeakerError::NotOffered(_) | SpeakerError::Codec(_))
    }
}

impl From<BackchannelError> for SpeakerError {
    fn from(e: BackchannelError) -> SpeakerError {
        match e {
            BackchannelError::NotOffered(_) => SpeakerError::NotOffered(e.to_string()),
            BackchannelError::Codec(codec) => SpeakerError::Codec(codec),
            BackchannelError::Client(e) => SpeakerError::Failed(e.to_string()),
        }
    }
}

/// Which way a camera takes speech, and where.
#[derive(Debug, Clone)]
pub enum Vendor {
    /// The ONVIF backchannel of the camera's RTSP URL.
    Onvif,
    /// ISAPI two-way audio at `base` (`http://host[:port]`).
    Isapi { base: url::Url },
}

const USER_AGENT: &str = "lockstep-talk";

impl Vendor {
    /// Opens a session (`rtsp` is the camera's stream URL, credentials apart).
    pub async fn open(
        &self,
        rtsp: &url::Url,
        credentials: Option<Credentials>,
    ) -> Result<Box<dyn SpeakerPath>, SpeakerError> {
        Ok(match self {
            Vendor::Onvif => Box::new(Backchannel::open(rtsp, credentials, USER_AGENT).await?),
            Vendor::Isapi { base } => Box::new(IsapiTalk::open(base, credentials).await?),
        })
    }

    /// Whether the camera takes speech and in which codec, holding nothing open.
    pub async fn probe(
        &self,
        rtsp: &url::Url,
        credentials: Option<Credentials>,
    ) -> Result<BackchannelCodec, SpeakerError> {
        match self {
            Vendor::Onvif => Ok(Backchannel::probe(rtsp, credentials, USER_AGENT).await?),
            Vendor::Isapi { base } => {
                let mut http = CameraHttp::new(base, credentials).map_err(SpeakerError::Failed)?;
                Ok(isapi::probe(&mut http).await?.codec)
            }
        }
    }
}
