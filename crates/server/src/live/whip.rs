//! WHIP ingest (RFC 9725): a browser page, OBS or any WebRTC encoder publishes to a push source
//! with `POST /api/whip/{name}` (an SDP offer → 201, the answer and a `Location` to `DELETE`,
//! served by the same handler as WHEP's).
//! The publisher's sender reports put both tracks on one timeline: every frame goes out the
//! source's playout delay after its capture time (the publisher's wallclock for its RTP time,
//! mapped onto our clock once), and is re-served like a camera — WHEP viewers, recording.
//! A track's media before its first sender report cannot be placed and is dropped (browsers
//! report within about a second).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lockstep_media::{LiveFrame, LiveMedia};
use lockstep_sync::{LocalInstant, TimestampUnwrapper};
use lockstep_webrtc::whep_client::Track;
use lockstep_webrtc::{Received, WhepError};
use tokio::sync::mpsc;

use super::api::{sdp_offer, ApiError, AppState};
use super::camera::{sleep_until, ticks, CameraState};
use super::push::ProducerSlot;
use super::push_audio_clock::from_ticks;
use super::push_session::playout_delay;

/// `POST /api/whip/{name}`.
pub async fn offer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
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
    let (session, answer, frames) = state.whep.publish(&name, offer).map_err(|e| match e {
        WhepError::MalformedOffer(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        WhepError::NoCompatibleCodec(_) => ApiError::new(StatusCode::NOT_ACCEPTABLE, e.to_string()),
    })?;
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

/// One track's place on the output timeline: output ticks = `base` + the unwrapped RTP time.
#[derive(Debug, Default)]
struct TrackClock {
    unwrap: TimestampUnwrapper,
    base: Option<i64>,
}

/// The publisher's frames → the source's feed, each when due.
async fn run(source: ProducerSlot, mut frames: mpsc::Receiver<Received>) {
    let clock = source.clock;
    let feed = source.handle.feed.clone();
    let delay_nanos = playout_delay(source.handle.settings.profile).as_nanos() as i64;
    // Publisher wallclock (Unix µs) → our clock (µs): fixed at the first frame that can be placed.
    let mut offset_us: Option<i64> = None;
    let (mut video, mut audio) = (TrackClock::default(), TrackClock::default());
    let mut held: VecDeque<LiveFrame> = VecDeque::new();
    let mut need_keyframe = true;
    let mut live = false;
    loop {
        let due = held.front().map(|f| f.wallclock);
        let frame = tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => Some(frame),
                None => break,
            },
            () = sleep_until(due) => None,
        };
        let now = Instant::now();
        while held.front().is_some_and(|f| f.wallclock <= now) {
            if let Some(f) = held.pop_front() {
                feed.publish(f);
            }
        }
        let Some(frame) = frame else { continue };
        let Some((report_rtp, report_ntp)) = frame.report else {
            continue;
        };
        let (rate, track) = match frame.track {
            Track::Video => (90_000i64, &mut video),
            Track::Audio => (48_000i64, &mut audio),
        };
        let rtp = track.unwrap.unwrap(frame.rtp_time);
        let base = match track.base {
            Some(base) => base,
            None => {
                // Capture wallclock of this frame from the report, then onto our clock.
                let since_report = i64::from(frame.rtp_time.wrapping_sub(report_rtp) as i32);
                let capture_unix_us = unix_us(report_ntp) + since_report * 1_000_000 / rate;
                let arrived_us = clock.local(frame.arrived).as_nanos() / 1_000;
                let offset = *offset_us.get_or_insert(arrived_us - capture_unix_us);
                let out_nanos = (capture_unix_us + offset) * 1_000 + delay_nanos;
                let out_ticks = ticks(LocalInstant::from_nanos(out_nanos), rate as u32);
                *track.base.insert(out_ticks - rtp)
            }
        };
        let pts = base + rtp;
        let at = from_ticks(pts, rate as u32);
        let media = match frame.track {
            Track::Video => {
                // After a loss, wait for the next keyframe (asked for every 2 s).
                if !frame.contiguous && !frame.keyframe {
                    need_keyframe = true;
                }
                if need_keyframe && !frame.keyframe {
                    continue;
                }
                need_keyframe = false;
                LiveMedia::H264 {
                    keyframe: frame.keyframe,
                }
            }
            Track::Audio => LiveMedia::Opus,
        };
        if !live {
            live = true;
            source.status.send_modify(|s| {
                s.state = CameraState::Live;
                s.error = None;
                s.sessions += 1;
                s.video_codec = Some("H264");
                s.audio_codec = Some("Opus (WHIP)".into());
            });
        }
        let out = LiveFrame {
            media,
            wallclock: clock.instant(at),
            pts,
            data: frame.data,
        };
        // In due order (audio and video interleave).
        let i = held.partition_point(|f| f.wallclock <= out.wallclock);
        held.insert(i, out);
    }
    feed.clear_cache();
    source.status.send_modify(|s| {
        s.state = CameraState::Waiting;
        s.error = Some("WHIP publisher left".into());
    });
}

fn unix_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
