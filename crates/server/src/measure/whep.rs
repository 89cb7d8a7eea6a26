//! A live WHEP stream (`http://…/api/whep/NAME`), received by a str0m peer as a browser would:
//! each track's RTP time is mapped to the sender's wallclock through the sender reports it gets,
//! which is exactly what a browser's lip sync relies on. So the figure is the offset a browser
//! that honours sender reports would play, at the timestamp level.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use lockstep_media::PictureReader;
use lockstep_opus::OpusDecoder;
use lockstep_sync::{NtpTime, SenderReportClock, TimestampUnwrapper, VIDEO_RATE_HZ};
use lockstep_webrtc::whep_client::{ClientEvent, Track, WhepClient};

use super::rtsp::{finish, timed_pictures, Timed};
use super::Observations;

const AUDIO_RATE: u32 = 48_000;

fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub async fn observe(
    endpoint: &str,
    token: Option<&str>,
    duration_secs: f64,
) -> anyhow::Result<Observations> {
    let mut client = WhepClient::connect_with(endpoint, token).await?;
    let mut opus = OpusDecoder::new(AUDIO_RATE, 1)?;
    let mut reports = [
        SenderReportClock::new(VIDEO_RATE_HZ),
        SenderReportClock::new(AUDIO_RATE),
    ];
    let mut unwrap = [TimestampUnwrapper::default(), TimestampUnwrapper::default()];
    let index = |track: Track| match track {
        Track::Video => 0,
        Track::Audio => 1,
    };
    let mut pictures: Option<PictureReader<_>> = None;
    let mut chunks: Vec<Timed<Vec<f32>>> = Vec::new();
    let mut pacing_ms = Vec::new();
    let mut last_audio: Option<(Instant, i64)> = None;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(duration_secs);
    let connect_deadline = started + Duration::from_secs(10);
    let mut connected = false;
    loop {
        let wait_until = if connected {
            deadline
        } else {
            deadline.min(connect_deadline)
        };
        let Some(event) = client.next_event(wait_until).await? else {
            if !connected && Instant::now() >= connect_deadline {
                bail!(
                    "{endpoint}: no WebRTC connection after 10 s (is UDP to the server blocked?)"
                );
            }
            break;
        };
        match event {
            ClientEvent::Connected => connected = true,
            ClientEvent::Media {
                track,
                rtp_time,
                received,
                data,
                ..
            } => {
                let t = index(track);
                let ts_ext = unwrap[t].unwrap(rtp_time);
                let arrival = unix_micros(SystemTime::now());
                let elapsed_secs = received.duration_since(started).as_secs_f64();
                if track == Track::Video {
                    let reader = match &mut pictures {
                        Some(reader) => reader,
                        None => pictures.insert(PictureReader::new(client.video_codec())?),
                    };
                    reader.push((ts_ext, elapsed_secs, arrival), &data);
                    continue;
                }
                if let Some((at, ts)) = last_audio {
                    let arrived = received.duration_since(at).as_secs_f64();
                    let spacing = (ts_ext - ts) as f64 / f64::from(AUDIO_RATE);
                    pacing_ms.push((arrived - spacing).abs() * 1e3);
                }
                last_audio = Some((received, ts_ext));
                if let Ok(pcm) = opus.decode(Some(&data)) {
                    chunks.push(Timed {
                        ts_ext,
                        elapsed_secs,
                        arrival_unix_micros: arrival,
                        item: pcm.iter().map(|&s| f32::from(s) / 32_768.0).collect(),
                    });
                }
            }
            ClientEvent::SenderReport {
                track,
                rtp_time,
                ntp,
            } => {
                let t = index(track);
                let ts_ext = unwrap[t].peek(rtp_time);
                let ntp = NtpTime::from_system_time(ntp);
                let _ = reports[t].handle_sender_report(ts_ext, ntp);
            }
        }
    }
    client.disconnect();
    let pictures = match pictures {
        Some(reader) => timed_pictures(reader)?,
        None => Vec::new(),
    };
    let mut observations = finish(pictures, chunks, &reports, AUDIO_RATE);
    if observations.timing != "sender reports" {
        bail!("{endpoint}: no sender reports for both tracks in {duration_secs} s");
    }
    observations.timing = "WebRTC sender reports";
    observations.audio_pacing_ms = pacing_ms;
    Ok(observations)
}
