//! WHIP ingest (RFC 9725): a browser page, OBS or any WebRTC encoder publishes to a push source
//! with `POST /api/whip/{name}` (an SDP offer → 201, the answer and a `Location` to `DELETE`,
//! served by the same handler as WHEP's).
//! The publisher is one more front end of the shared source driver: its frames and sender
//! reports go through the same [`Source`](lockstep_sync::Source) as a camera's RTP — jitter
//! statistics, the sender-report clock re-fitted at every report (a publisher whose clock drifts
//! or steps stays in sync), the adaptive playout delay, Opus decoded and re-encoded by the same
//! audio path — and are re-served like a camera: WHEP viewers, recording, sync statistics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lockstep_media::{
    AudioDecoder, AudioTrackDecoder, Codec, MediaPayload, MediaSource, VideoTrack, LIVE_RATE_HZ,
};
use lockstep_rtsp::ingest::LocalClock;
use lockstep_sync::{LocalInstant, NtpTime, SourceConfig, SourceInput, TrackKind, FRAME_SSRC};
use lockstep_webrtc::whep_client::Track;
use lockstep_webrtc::Received;
use tokio::sync::mpsc;

use super::api::{refused_peer, sdp_offer};
use super::camera::CameraState;
use super::push::ProducerSlot;
use super::source_driver::{drive, FrontEnd, SourceSinks};
use super::state::{ApiError, AppState};

/// `POST /api/whip/{name}`.
pub async fn offer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(source) = state.pushes.iter().find(|p| p.name() == name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no push source named {name:?} (WHIP publishes to a [[push]] source)"),
        ));
    };
    let offer = sdp_offer("WHIP", &headers, &body)?;
    let Some(slot) = source.claim() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("push source {name:?} already has a producer connected"),
        ));
    };
    let (session, answer, frames) = state
        .whep
        .publish(&name, client.ip(), offer)
        .map_err(refused_peer)?;
    tokio::spawn(run(slot, frames));
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/api/whip/{name}/{session}")),
        ],
        answer,
    )
        .into_response())
}

/// A WHIP publisher's frames as source inputs: each frame, preceded by its stream's sender
/// report whenever that is a new one, so the sender-report clock re-fits at every report.
struct WhipFrontEnd {
    frames: mpsc::Receiver<Received>,
    /// The last report passed on per track (video, audio), and a frame waiting behind a report.
    reported: [Option<(u32, SystemTime)>; 2],
    waiting: Option<(LocalInstant, SourceInput<MediaPayload>)>,
}

impl FrontEnd for WhipFrontEnd {
    type Error = std::convert::Infallible;
    async fn next_input(
        &mut self,
        clock: &LocalClock,
    ) -> Result<Option<(LocalInstant, SourceInput<MediaPayload>)>, Self::Error> {
        if let Some(waiting) = self.waiting.take() {
            return Ok(Some(waiting));
        }
        let Some(frame) = self.frames.recv().await else {
            return Ok(None);
        };
        let arrived = clock.local(frame.arrived);
        let (kind, slot) = match frame.track {
            Track::Video => (TrackKind::Video, 0),
            Track::Audio => (TrackKind::Audio, 1),
        };
        let input = SourceInput::Frame {
            kind,
            rtp_ts: frame.rtp_time,
            payload: MediaPayload::Frame {
                data: frame.data,
                keyframe: frame.keyframe,
                contiguous: frame.contiguous,
            },
        };
        match frame.report {
            Some(report) if self.reported[slot] != Some(report) => {
                self.reported[slot] = Some(report);
                self.waiting = Some((arrived, input));
                let (rtp_ts, wallclock) = report;
                let report = SourceInput::SenderReport {
                    kind,
                    ssrc: FRAME_SSRC,
                    rtp_ts,
                    ntp: NtpTime::from_system_time(wallclock),
                };
                Ok(Some((arrived, report)))
            }
            _ => Ok(Some((arrived, input))),
        }
    }
}

/// The publisher's frames through the shared source driver, until the publisher leaves.
async fn run(source: ProducerSlot, frames: mpsc::Receiver<Received>) {
    let settings = source.handle.settings.clone();
    let sinks = SourceSinks {
        feed: source.handle.feed.clone(),
        pacer: source.pacer.clone(),
        status: source.status.clone(),
        clock: source.clock,
        audio: settings.audio || settings.record_audio,
        echo: None,
    };
    sinks.status.send_modify(|s| {
        s.video_codec = Some(Codec::H264.as_str());
        s.audio_codec = Some(Codec::Opus.as_str().to_owned());
    });
    let audio = match AudioDecoder::opus(2) {
        Ok(decoder) => Some((LIVE_RATE_HZ, AudioTrackDecoder::new(decoder))),
        Err(e) => {
            tracing::error!("WHIP audio decoder: {e}");
            None
        }
    };
    let media = MediaSource::new(
        SourceConfig::new(settings.profile),
        Some(VideoTrack::h264(None)),
        audio,
    );
    let mut front = WhipFrontEnd {
        frames,
        reported: [None, None],
        waiting: None,
    };
    let _ = drive(&mut front, media, &sinks).await;
    sinks.feed.clear_cache();
    sinks.status.send_modify(|s| {
        s.state = CameraState::Waiting;
        s.error = Some("WHIP publisher left".into());
        s.sync = None;
    });
}
