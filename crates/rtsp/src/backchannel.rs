//! The ONVIF backchannel (ONVIF Streaming Specification, "Back channel connection"): an RTSP
//! session of our own that *sends* audio to the camera's speaker. Every request carries
//! `Require: www.onvif.org/ver20/backchannel`; the camera's DESCRIBE answer then holds a
//! `sendonly` audio section, which we SETUP over the connection (interleaved), PLAY, and feed
//! with RTP packets on its channel. Talk opens it when someone speaks and closes it soon after:
//! a backchannel held open locks the doorbell's button and other apps on many cameras.

use std::time::Duration;

use crate::auth::Credentials;
use crate::client::{ClientError, RtspClient};
use crate::rtp::rtp_packet;
use crate::sdp::{resolve_control, Sdp};

/// The ONVIF backchannel's feature tag.
pub const ONVIF_BACKCHANNEL: &str = "www.onvif.org/ver20/backchannel";

/// The interleaved channel we ask for (the camera may choose another).
const CHANNEL: u8 = 0;

/// How long a TEARDOWN may take when closing.
const TEARDOWN_WAIT: Duration = Duration::from_secs(2);

/// What the camera's speaker takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelCodec {
    /// `pcmu` or `pcma` (the ones written today; AAC and G.726 cameras are refused by name).
    pub encoding: String,
    pub payload_type: u8,
    pub clock_rate_hz: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    /// The camera has no backchannel, or would not say so.
    #[error("the camera offers no ONVIF backchannel: {0}")]
    NotOffered(String),
    /// It has one, in an encoding lockstep does not write yet.
    #[error("the camera's backchannel takes {0}; lockstep sends G.711 (PCMU/PCMA) so far")]
    Codec(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// An open backchannel: PLAYing, ready for packets.
#[derive(Debug)]
pub struct Backchannel {
    client: RtspClient,
    url: url::Url,
    channel: u8,
    codec: BackchannelCodec,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
}

impl Backchannel {
    /// DESCRIBE, SETUP and PLAY of `url`'s backchannel.
    pub async fn open(
        url: &url::Url,
        credentials: Option<Credentials>,
        user_agent: &'static str,
    ) -> Result<Backchannel, BackchannelError> {
        let mut client = RtspClient::connect(url, credentials, user_agent).await?;
        client.require(ONVIF_BACKCHANNEL);
        let (text, base) = match client.describe(url).await {
            Ok(described) => described,
            // 551 Option not supported: the camera does not know the tag.
            Err(ClientError::Status { status, reason, .. }) if status == 551 || status == 400 => {
                return Err(BackchannelError::NotOffered(format!(
                    "DESCRIBE with the backchannel's Require answered {status} {reason}"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let sdp = Sdp::parse(&text);
        let section = sdp
            .media
            .iter()
            .find(|m| m.media == "audio" && m.sendonly)
            .ok_or_else(|| {
                BackchannelError::NotOffered("its answer has no sendonly audio section".into())
            })?;
        if !matches!(section.encoding.as_str(), "pcmu" | "pcma") {
            return Err(BackchannelError::Codec(format!(
                "{} at {} Hz",
                section.encoding, section.clock_rate_hz
            )));
        }
        let codec = BackchannelCodec {
            encoding: section.encoding.clone(),
            payload_type: section.payload_type,
            clock_rate_hz: section.clock_rate_hz,
        };
        let track = section.setup_url(&base);
        let interleaved = client.setup_interleaved(&track, CHANNEL).await?;
        // PLAY the aggregate when the SDP names one, else the track (as ingest does).
        let play_url = match sdp.control.as_deref() {
            Some(control) if !control.is_empty() => resolve_control(&base, Some(control)),
            _ => track,
        };
        client.play(&play_url).await?;
        Ok(Backchannel {
            client,
            url: play_url,
            channel: interleaved.rtp,
            codec,
            seq: random_u16(),
            timestamp: u32::from(random_u16()) << 16,
            ssrc: u32::from(random_u16()) << 16 | u32::from(random_u16()),
        })
    }

    pub fn codec(&self) -> &BackchannelCodec {
        &self.codec
    }

    /// Sends one packet of encoded audio holding `samples` samples (160 for 20 ms at 8 kHz).
    pub async fn send(&mut self, payload: &[u8], samples: u32) -> Result<(), ClientError> {
        let packet = rtp_packet(
            self.codec.payload_type,
            false,
            self.seq,
            self.timestamp,
            self.ssrc,
            payload,
        );
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.client.send_interleaved(self.channel, &packet).await
    }

    /// TEARDOWN, and the connection closed.
    pub async fn close(mut self) {
        let url = self.url.clone();
        self.client.teardown(&url, TEARDOWN_WAIT).await;
    }
}

/// 16 bits from the OS (RFC 3550 wants random initial sequence numbers and timestamps).
fn random_u16() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    u16::from_be_bytes(bytes)
}
