//! Hikvision's two-way audio over ISAPI (its HTTP API), for cameras that speak no ONVIF
//! backchannel. The documented exchange (ISAPI General Application developer guide, two-way
//! audio): `GET /ISAPI/System/TwoWayAudio/channels` says each channel's codec; `PUT
//! …/channels/{id}/open` starts a session and answers its `sessionId`; `PUT
//! …/channels/{id}/audioData?sessionId=…` carries raw G.711 that the speaker plays as it
//! comes; `PUT …/channels/{id}/close` ends it. Digest on every request.
//!
//! The audio goes out as one upload whose declared length is an hour of audio, written 20 ms at
//! a time as speech comes: the device plays bytes as they arrive (firmwares that answer the
//! upload at once and keep reading, as go2rtc found, are served the same way: an early 200 is
//! not an end). Closing ends the upload, then sends `close`.

use std::time::{Duration, Instant};

use lockstep_media::g711::G711Law;
use lockstep_media::speaker_encoding::SpeakerEncoding;
use lockstep_rtsp::auth::Credentials;
use lockstep_rtsp::backchannel::BackchannelCodec;
use lockstep_rtsp::talkspurt::TalkspurtClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::speaker_path::{Ended, Sent, SpeakerError, SpeakerPath};
use crate::camera_http::{read_response, CameraHttp};

const CHANNELS: &str = "/ISAPI/System/TwoWayAudio/channels";

/// The upload's declared length: an hour of 8 kHz G.711 (the session closes long before).
const UPLOAD_BYTES: u64 = 8_000 * 3_600;

/// 20 ms packets waiting for the connection (a second); beyond, the newest are dropped.
const QUEUE: usize = 50;

/// How long the camera may take to answer the end of the upload.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A camera's two-way audio channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsapiChannel {
    pub id: String,
    pub codec: BackchannelCodec,
}

/// Asks `http` for the camera's two-way audio channels; the first that takes G.711.
pub async fn probe(http: &mut CameraHttp) -> Result<IsapiChannel, SpeakerError> {
    let answer = http
        .request("GET", CHANNELS)
        .await
        .map_err(SpeakerError::Failed)?;
    match answer.status {
        200 => channel_from_list(&answer.body),
        404 | 403 => Err(SpeakerError::NotOffered(format!(
            "GET {CHANNELS} answered {} {}: no ISAPI two-way audio",
            answer.status, answer.reason
        ))),
        status => Err(SpeakerError::Failed(format!(
            "GET {CHANNELS} answered {status} {}",
            answer.reason
        ))),
    }
}

/// The first channel of a `TwoWayAudioChannelList` that takes G.711, or why none can talk.
pub fn channel_from_list(xml: &str) -> Result<IsapiChannel, SpeakerError> {
    let mut offered = Vec::new();
    for channel in xml.split("<TwoWayAudioChannel").skip(1) {
        let (Some(id), Some(codec)) = (
            element(channel, "id"),
            element(channel, "audioCompressionType"),
        ) else {
            continue;
        };
        // It goes into our request paths: only what a channel number can be.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let law = match codec {
            "G.711ulaw" => G711Law::MuLaw,
            "G.711alaw" => G711Law::ALaw,
            other => {
                offered.push(other.to_owned());
                continue;
            }
        };
        return Ok(IsapiChannel {
            id: id.to_owned(),
            codec: BackchannelCodec {
                encoding: SpeakerEncoding::G711(law),
                payload_type: law.payload_type(),
                clock_rate_hz: 8_000,
            },
        });
    }
    Err(match offered.is_empty() {
        true => SpeakerError::NotOffered(format!("GET {CHANNELS} lists no two-way audio channel")),
        false => SpeakerError::Codec(offered.join(", ")),
    })
}

/// An open ISAPI talk session: the upload is under way.
#[derive(Debug)]
pub struct IsapiTalk {
    codec: BackchannelCodec,
    audio: mpsc::Sender<Vec<u8>>,
    session: JoinHandle<Result<(), String>>,
    timeline: TalkspurtClock,
}

impl IsapiTalk {
    /// Probes, opens a session and starts the audio upload.
    pub async fn open(
        base: &url::Url,
        credentials: Option<Credentials>,
    ) -> Result<IsapiTalk, SpeakerError> {
        let mut http = CameraHttp::new(base, credentials).map_err(SpeakerError::Failed)?;
        let channel = probe(&mut http).await?;
        let open_path = format!("{CHANNELS}/{}/open", channel.id);
        let opened = http
            .request("PUT", &open_path)
            .await
            .map_err(SpeakerError::Failed)?;
        if opened.status != 200 {
            return Err(SpeakerError::Failed(format!(
                "PUT {open_path} answered {} {}{}",
                opened.status,
                opened.reason,
                element(&opened.body, "statusString")
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            )));
        }
        // Older firmwares answer a ResponseStatus without a session id: the query is optional.
        let session = element(&opened.body, "sessionId")
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()));
        let audio_path = match session {
            Some(session) => format!("{CHANNELS}/{}/audioData?sessionId={session}", channel.id),
            None => format!("{CHANNELS}/{}/audioData", channel.id),
        };
        let close_path = format!("{CHANNELS}/{}/close", channel.id);
        let upload = match http
            .start_upload("PUT", &audio_path, "application/octet-stream", UPLOAD_BYTES)
            .await
        {
            Ok(upload) => upload,
            Err(e) => {
                let _ = http.request("PUT", &close_path).await;
                return Err(SpeakerError::Failed(e));
            }
        };
        let (audio, queued) = mpsc::channel(QUEUE);
        let session = tokio::spawn(run(upload, queued, http, close_path));
        Ok(IsapiTalk {
            codec: channel.codec,
            audio,
            session,
            timeline: TalkspurtClock::default(),
        })
    }
}

impl SpeakerPath for IsapiTalk {
    fn codec(&self) -> &BackchannelCodec {
        &self.codec
    }

    fn send(&mut self, payload: &[u8], samples: u32) -> Sent {
        let placed = self
            .timeline
            .place(Instant::now(), samples, self.codec.clock_rate_hz);
        match self.audio.try_send(payload.to_vec()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(placed.start),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Ended),
        }
    }

    fn close(self: Box<Self>) -> futures::future::BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            drop(self.audio);
            self.session
                .await
                .unwrap_or_else(|e| Err(format!("the ISAPI session's task failed: {e}")))
        })
    }
}

/// The upload's owner: audio out as it comes; an answer from the camera other than 200 ends
/// the session (its reason kept); when the audio stops, the upload ends and `close` is sent.
async fn run(
    mut upload: TcpStream,
    mut audio: mpsc::Receiver<Vec<u8>>,
    mut http: CameraHttp,
    close_path: String,
) -> Result<(), String> {
    let mut ended = None;
    let mut peek = [0u8; 1];
    loop {
        tokio::select! {
            chunk = audio.recv() => match chunk {
                Some(chunk) => if let Err(e) = upload.write_all(&chunk).await {
                    ended = Some(format!("the camera's audio upload failed: {e}"));
                    break;
                },
                None => break,
            },
            // The camera spoke before the upload's end: an early 200 (kept going), or its end.
            n = upload.peek(&mut peek) => {
                let said = match n {
                    Ok(0) | Err(_) => "the camera closed the audio upload".to_owned(),
                    Ok(_) => match read_response(&mut upload).await {
                        Ok((answer, _)) if answer.status == 200 => continue,
                        Ok((answer, _)) => format!(
                            "the camera ended the audio upload: {} {}{}",
                            answer.status,
                            answer.reason,
                            element(&answer.body, "statusString").map(|s| format!(" ({s})")).unwrap_or_default()
                        ),
                        Err(e) => format!("the camera's answer to the upload: {e}"),
                    },
                };
                ended = Some(said);
                break;
            }
        }
    }
    if ended.is_none() {
        // The end of the upload: the camera answers it (or just closes).
        let _ = upload.shutdown().await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(CLOSE_WAIT, upload.read_to_end(&mut rest)).await;
    }
    let closed = http.request("PUT", &close_path).await;
    match (ended, closed) {
        (Some(reason), _) => Err(reason),
        (None, Ok(answer)) if answer.status == 200 => Ok(()),
        (None, Ok(answer)) => Err(format!(
            "PUT {close_path} answered {} {}",
            answer.status, answer.reason
        )),
        (None, Err(e)) => Err(e),
    }
}

/// The text of the first `<name>…</name>` in an ISAPI document (they have no attributes on
/// these elements and no prefixes).
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_g711_channel_is_chosen_and_others_named() {
        let list =
            |channels: &str| format!("<TwoWayAudioChannelList>{channels}</TwoWayAudioChannelList>");
        let channel = |id: &str, codec: &str| {
            format!("<TwoWayAudioChannel><id>{id}</id><audioCompressionType>{codec}</audioCompressionType></TwoWayAudioChannel>")
        };
        let chosen =
            channel_from_list(&list(&(channel("1", "G.726") + &channel("2", "G.711alaw"))))
                .expect("a G.711 channel");
        assert_eq!(chosen.id, "2");
        assert_eq!(chosen.codec.encoding, SpeakerEncoding::G711(G711Law::ALaw));
        let refused = channel_from_list(&list(&channel("1", "G.726"))).unwrap_err();
        assert!(refused.to_string().contains("G.726"), "{refused}");
        // An id that would change our request's path is not used.
        assert!(channel_from_list(&list(&channel("1/../x", "G.711ulaw"))).is_err());
        assert!(matches!(
            channel_from_list("<html/>"),
            Err(SpeakerError::NotOffered(_))
        ));
    }

    #[test]
    fn elements_are_read_from_isapi_documents() {
        let xml = r#"<TwoWayAudioSession version="2.0"><sessionId> 2093716360 </sessionId></TwoWayAudioSession>"#;
        assert_eq!(element(xml, "sessionId"), Some("2093716360"));
        assert_eq!(element(xml, "statusString"), None);
        assert_eq!(element("<id>1", "id"), None);
    }
}
