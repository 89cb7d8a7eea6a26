//! A live `/api/media/NAME` WebSocket (`ws://…/api/media/NAME`): what lockstep's own player is
//! sent. Every frame carries its time on the source's output timeline, one clock for both
//! tracks, so the figure is the offset a player that presents each frame at its stamp plays.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use futures::{SinkExt as _, StreamExt as _};
use lockstep_media::{Codec, PictureReader};
use lockstep_opus::OpusDecoder;
use lockstep_sync::SenderReportClock;
use tokio_tungstenite::tungstenite::Message;

use super::rtsp::{finish, timed_pictures, Timed};
use super::Observations;

use crate::live::media_stream::{parse_frame, KIND_AUDIO, KIND_VIDEO};

const AUDIO_RATE: u32 = 48_000;
/// Inside the shortest idle timeout a server may be configured with (5 s).
const KEEPALIVE: Duration = Duration::from_secs(4);

/// A WebSocket client's request for `url`, with `Authorization: Bearer` when given a token.
pub fn request(
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url
        .into_client_request()
        .with_context(|| format!("{url}: not a WebSocket URL"))?;
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .context("the token is not a valid header value")?;
        request.headers_mut().insert("authorization", value);
    }
    Ok(request)
}

pub async fn observe(
    url: &str,
    token: Option<&str>,
    duration_secs: f64,
) -> anyhow::Result<Observations> {
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request(url, token)?),
    )
    .await
    .with_context(|| format!("{url}: no WebSocket connection after 10 s"))?
    .with_context(|| format!("{url}: cannot connect"))?;
    let mut opus = OpusDecoder::new(AUDIO_RATE, 1)?;
    let mut pictures: Option<PictureReader<_>> = None;
    let mut chunks: Vec<Timed<Vec<f32>>> = Vec::new();
    let mut codec: Option<Codec> = None;
    let deadline = Instant::now() + Duration::from_secs_f64(duration_secs);
    // The server closes a socket that sends no message for its idle timeout (pongs do not
    // count), so a long measurement says it is alive the way the player does: a stats message.
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.reset();
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline.into(), socket.next()) => next,
            _ = keepalive.tick() => {
                let stats = r#"{"type":"stats","client":"lockstep measure"}"#;
                socket
                    .send(Message::Text(stats.into()))
                    .await
                    .with_context(|| format!("{url}: send failed"))?;
                continue;
            }
        };
        let message = match next {
            Err(_) => break,
            Ok(None) => bail!("{url}: the server closed the socket"),
            Ok(Some(message)) => message.with_context(|| format!("{url}: read failed"))?,
        };
        let bytes = match message {
            Message::Text(text) => {
                let value: serde_json::Value = serde_json::from_str(&text)?;
                if value["type"] == "header" {
                    codec = match value["video"]["codec"].as_str() {
                        Some(c) if c.starts_with("avc1") => Some(Codec::H264),
                        Some(c) if c.starts_with("hvc1") => Some(Codec::H265),
                        Some(c) => bail!("{url}: a video codec measure cannot read: {c}"),
                        None => None,
                    };
                }
                continue;
            }
            Message::Close(frame) => bail!("{url}: the server closed the socket: {frame:?}"),
            Message::Binary(bytes) => bytes,
            _ => continue,
        };
        let Some((kind, _, ts_us, payload)) = parse_frame(&bytes) else {
            bail!("{url}: a frame message of {} bytes", bytes.len());
        };
        let arrival = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let elapsed_secs = ts_us as f64 * 1e-6;
        match kind {
            KIND_VIDEO => {
                let Some(codec) = codec else {
                    bail!("{url}: video before a header naming its codec");
                };
                let reader = match &mut pictures {
                    Some(reader) => reader,
                    None => pictures.insert(PictureReader::new(codec)?),
                };
                reader.push((ts_us, elapsed_secs, arrival), payload);
            }
            KIND_AUDIO => {
                if let Ok(pcm) = opus.decode(Some(payload)) {
                    chunks.push(Timed {
                        ts_ext: ts_us,
                        elapsed_secs,
                        arrival_unix_micros: arrival,
                        item: pcm.iter().map(|&s| f32::from(s) / 32_768.0).collect(),
                    });
                }
            }
            other => bail!("{url}: a frame of unknown kind {other}"),
        }
    }
    let _ = socket.close(None).await;
    let pictures = match pictures {
        Some(reader) => timed_pictures(reader)?,
        None => Vec::new(),
    };
    // No sender reports: both tracks' times are already on one timeline (the stamps).
    let no_reports = [
        SenderReportClock::new(lockstep_sync::VIDEO_RATE_HZ),
        SenderReportClock::new(AUDIO_RATE),
    ];
    let mut observations = finish(pictures, chunks, &no_reports, AUDIO_RATE);
    observations.timing = "media socket stamps";
    Ok(observations)
}
