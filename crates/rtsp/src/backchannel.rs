//! The ONVIF backchannel (ONVIF Streaming Specification, "Back channel connection"): an RTSP
//! session of our own that *sends* audio to the camera's speaker. Every request carries
//! `Require: www.onvif.org/ver20/backchannel`; the camera's DESCRIBE answer then holds a
//! `sendonly` audio section, which we SETUP over the connection (interleaved), PLAY, and feed
//! with RTP packets on its channel. Talk opens it when someone speaks and closes it soon after:
//! a backchannel held open locks the doorbell's button and other apps on many cameras.
//!
//! The backchannel and the camera's own audio are set up (video never is). A task owns the connection: it writes the packets it is
//! given, reads and drops what the camera sends (RTCP, answers: its sending never blocks on
//! us), and keeps the session alive.

use std::time::{Duration, Instant, SystemTime};

use lockstep_media::speaker_encoding::SpeakerEncoding;
use lockstep_sync::NtpTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::Credentials;
use crate::client::{ClientError, RtspClient};
use crate::rtp::{rtp_packet, sender_report};
use crate::sdp::{resolve_control, Sdp};
use crate::talkspurt::{Placed, TalkspurtClock};

/// The ONVIF backchannel's feature tag.
pub const ONVIF_BACKCHANNEL: &str = "www.onvif.org/ver20/backchannel";

/// The interleaved channel we ask for (the camera may choose another).
const CHANNEL: u8 = 0;

/// How long a TEARDOWN may take when closing.
const TEARDOWN_WAIT: Duration = Duration::from_secs(2);

/// Packets waiting for the connection (a second of 20 ms packets); packets beyond
/// are dropped (late speech is worse than lost speech).
const QUEUE: usize = 50;

/// Sender reports go out this often while speech flows (RFC 3550 allows 5 s; a camera that
/// lip-syncs or measures its backchannel learns the clock sooner).
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Our CNAME in the sender reports.
const CNAME: &str = "lockstep-talk";

/// What the camera's speaker takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelCodec {
    /// What the speaker takes: G.711 or G.726-32 (AAC and other G.726 rates are refused by
    /// name).
    pub encoding: SpeakerEncoding,
    pub payload_type: u8,
    pub clock_rate_hz: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    /// The camera has no backchannel, or would not say so.
    #[error("the camera offers no ONVIF backchannel: {0}")]
    NotOffered(String),
    /// It has one, in an encoding lockstep does not write yet.
    #[error(
        "the camera's backchannel takes {0}; lockstep sends G.711 (PCMU/PCMA) and G.726-32 so far"
    )]
    Codec(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What goes out on the connection: RTP on the backchannel's channel, RTCP on the next.
#[derive(Debug)]
enum Outgoing {
    Rtp(Vec<u8>),
    Rtcp(Vec<u8>),
}

/// An open backchannel: PLAYing, ready for packets.
#[derive(Debug)]
pub struct Backchannel {
    codec: BackchannelCodec,
    packets: mpsc::Sender<Outgoing>,
    session: JoinHandle<Result<(), ClientError>>,
    seq: u16,
    /// The RTP time of the next packet's first sample.
    timestamp: u32,
    ssrc: u32,
    timeline: TalkspurtClock,
    last_report: Option<Instant>,
    packets_sent: u32,
    octets_sent: u32,
}

impl Backchannel {
    /// Whether `url` offers a backchannel and in which codec: DESCRIBE only (no session is
    /// made, so nothing is held open and nothing needs a TEARDOWN).
    pub async fn probe(
        url: &url::Url,
        credentials: Option<Credentials>,
        user_agent: &'static str,
    ) -> Result<BackchannelCodec, BackchannelError> {
        let mut client = RtspClient::connect(url, credentials, user_agent).await?;
        Ok(describe(&mut client, url).await?.codec)
    }

    /// DESCRIBE, SETUP and PLAY of `url`'s backchannel.
    pub async fn open(
        url: &url::Url,
        credentials: Option<Credentials>,
        user_agent: &'static str,
    ) -> Result<Backchannel, BackchannelError> {
        let mut client = RtspClient::connect(url, credentials, user_agent).await?;
        let Described {
            sdp,
            base,
            codec,
            track,
        } = describe(&mut client, url).await?;
        // Every audio section in the SDP's order, the backchannel in its place: what a client
        // that listens and speaks sets up (GStreamer's rtspsrc, go2rtc), the form cameras are
        // tested with. Video is never set up: a main stream would cost megabits on a
        // connection that only speaks.
        let mut channel = None;
        let mut next = CHANNEL;
        for audio in sdp.media.iter().filter(|m| m.media == "audio") {
            let url = audio.setup_url(&base);
            let rtp = client.setup_interleaved(&url, next).await?.rtp;
            if url == track {
                channel = Some(rtp);
            }
            next = rtp.wrapping_add(2);
        }
        // (The backchannel is one of the audio sections: found there by `describe`.)
        let channel = channel.ok_or_else(|| {
            BackchannelError::NotOffered("its backchannel section was not set up".into())
        })?;
        // PLAY the aggregate when the SDP names one, else the track (as ingest does).
        let play_url = match sdp.control.as_deref() {
            Some(control) if !control.is_empty() => resolve_control(&base, Some(control)),
            _ => track,
        };
        client.play_now(&play_url).await?;
        client.expect_no_media();
        let (packets, queued) = mpsc::channel(QUEUE);
        let session = tokio::spawn(run(client, channel, play_url, queued));
        Ok(Backchannel {
            codec,
            packets,
            session,
            seq: random_u16(),
            timestamp: u32::from(random_u16()) << 16,
            ssrc: u32::from(random_u16()) << 16 | u32::from(random_u16()),
            timeline: TalkspurtClock::default(),
            last_report: None,
            packets_sent: 0,
            octets_sent: 0,
        })
    }

    pub fn codec(&self) -> &BackchannelCodec {
        &self.codec
    }

    /// Queues one packet of encoded audio holding `samples` samples (160 for 20 ms at 8 kHz),
    /// to be played from now. After a pause its RTP time jumps by the pause and it is marked as
    /// a talkspurt's start; a sender report follows every second. Returns the instant its RTP
    /// time stands for — the talkspurt's start plus its place in it, the timeline a camera
    /// plays it on, steady where the send instants jitter. `Err` once the session has ended
    /// (the camera closed it, or the connection failed): its reason comes from
    /// [`Backchannel::close`].
    pub fn send(&mut self, payload: &[u8], samples: u32) -> Result<Instant, ClosedError> {
        let now = Instant::now();
        let rate = u64::from(self.codec.clock_rate_hz.max(1));
        let Placed { start, pause } = self.timeline.place(now, samples, self.codec.clock_rate_hz);
        if let Some(pause) = pause {
            let ticks = pause.as_micros() as u64 * rate / 1_000_000;
            self.timestamp = self.timestamp.wrapping_add(ticks as u32);
        }
        let talkspurt = pause.is_some();
        let packet = rtp_packet(
            self.codec.payload_type,
            talkspurt,
            self.seq,
            self.timestamp,
            self.ssrc,
            payload,
        );
        let packet_timestamp = self.timestamp;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload.len() as u32);
        self.queue(Outgoing::Rtp(packet))?;
        if self.last_report.is_none_or(|at| now - at >= REPORT_EVERY) {
            self.last_report = Some(now);
            // The packet just queued starts playing at `start`: its RTP time is that instant.
            let wallclock = SystemTime::now() - now.saturating_duration_since(start);
            let report = sender_report(
                self.ssrc,
                NtpTime::from_system_time(wallclock),
                packet_timestamp,
                self.packets_sent,
                self.octets_sent,
                CNAME,
            );
            self.queue(Outgoing::Rtcp(report))?;
        }
        Ok(start)
    }

    fn queue(&self, outgoing: Outgoing) -> Result<(), ClosedError> {
        match self.packets.try_send(outgoing) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ClosedError),
        }
    }

    /// Sends what is queued, then TEARDOWN; the session's end, or why it ended before.
    pub async fn close(self) -> Result<(), ClientError> {
        drop(self.packets);
        match self.session.await {
            Ok(result) => result,
            Err(e) => Err(ClientError::Connection(format!(
                "the backchannel's task failed: {e}"
            ))),
        }
    }
}

/// A camera's DESCRIBE answer to the backchannel's Require.
struct Described {
    sdp: Sdp,
    base: url::Url,
    codec: BackchannelCodec,
    /// The backchannel's SETUP URL.
    track: url::Url,
}

async fn describe(client: &mut RtspClient, url: &url::Url) -> Result<Described, BackchannelError> {
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
    let Some(encoding) = SpeakerEncoding::from_sdp_name(&section.encoding) else {
        return Err(BackchannelError::Codec(format!(
            "{} at {} Hz",
            section.encoding, section.clock_rate_hz
        )));
    };
    let codec = BackchannelCodec {
        encoding,
        payload_type: section.payload_type,
        clock_rate_hz: section.clock_rate_hz,
    };
    let track = section.setup_url(&base);
    Ok(Described {
        sdp,
        base,
        codec,
        track,
    })
}

/// The backchannel session has ended.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the backchannel session has ended")]
pub struct ClosedError;

/// The connection's owner: packets out on `channel`, the camera's frames read and dropped
/// (`next_frame` also sends the keepalives), TEARDOWN when the packets stop coming.
async fn run(
    mut client: RtspClient,
    channel: u8,
    url: url::Url,
    mut packets: mpsc::Receiver<Outgoing>,
) -> Result<(), ClientError> {
    loop {
        tokio::select! {
            packet = packets.recv() => match packet {
                Some(Outgoing::Rtp(packet)) => client.send_interleaved(channel, &packet).await?,
                Some(Outgoing::Rtcp(report)) => {
                    client.send_interleaved(channel.wrapping_add(1), &report).await?;
                }
                None => break,
            },
            frame = client.next_frame() => {
                frame?;
            }
        }
    }
    client.teardown(&url, TEARDOWN_WAIT).await;
    Ok(())
}

/// 16 bits from the OS (RFC 3550 wants random initial sequence numbers and timestamps).
fn random_u16() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    u16::from_be_bytes(bytes)
}
