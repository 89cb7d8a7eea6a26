//! A live RTSP camera, read with retina. Each track's timestamps are mapped to the sender's
//! wallclock through its RTCP sender reports (the same least-squares clock the sync core uses), so
//! the measurement is the camera's true offset; without reports, RTP-Info alignment is all there
//! is, and the figure is what a report-blind relay would show.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use futures::StreamExt;
use lockstep_media::beep_flash::{BeepDetector, PictureObservation};
use lockstep_media::{MediaPayload, PictureReader, VideoTrack};
use lockstep_rtsp::ingest::{find_audio_track, find_video_track, split_credentials};
use lockstep_sync::{
    AudioDecode as _, LocalInstant, NtpTime, SenderReportClock, VideoAssemble as _, VideoPacket,
    VIDEO_RATE_HZ,
};
use retina::client::{
    InitialTimestampPolicy, PacketItem, PlayOptions, SessionOptions, SetupOptions,
};

use super::Observations;

fn unix_micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A decoded item waiting for its presentation time.
pub(super) struct Timed<T> {
    pub ts_ext: i64,
    pub elapsed_secs: f64,
    pub arrival_unix_micros: i64,
    pub item: T,
}

pub async fn observe(source: &str, duration_secs: f64) -> anyhow::Result<Observations> {
    let (url, creds) = split_credentials(source).map_err(anyhow::Error::msg)?;
    // Errors name the URL without its credentials.
    let shown = url.to_string();
    let mut session = retina::client::Session::describe(
        url,
        SessionOptions::default()
            .creds(creds)
            .user_agent("lockstep-measure".into()),
    )
    .await
    .with_context(|| format!("{shown}: DESCRIBE failed"))?;
    let streams = session.streams();
    let video = find_video_track(streams, session.sdp())
        .map_err(|reason| anyhow::anyhow!("{shown}: {reason}"))?;
    // The same depacketizers and decoders as the ingest: what measure reads, lockstep plays.
    let (audio, refused) = find_audio_track(streams, session.sdp());
    let Some((audio, mut audio_track)) = audio else {
        bail!(
            "{shown}: no audio track measure can decode ({})",
            refused.as_deref().unwrap_or("the camera sends no audio")
        );
    };
    let audio_rate = audio_track.rate_hz;
    let audio_delay = i64::from(audio_track.decoder.delay_samples());
    session.setup(video.index, SetupOptions::default()).await?;
    session.setup(audio, SetupOptions::default()).await?;
    let mut playing = Box::pin(
        session
            .play(PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive))
            .await
            .with_context(|| format!("{shown}: PLAY failed"))?,
    );

    let mut pictures = PictureReader::new(video.codec)?;
    let mut video_track = VideoTrack::new(video.codec, video.parameter_sets);
    let video = video.index;
    let mut reports = [
        SenderReportClock::new(VIDEO_RATE_HZ),
        SenderReportClock::new(audio_rate),
    ];
    let mut chunks: Vec<Timed<Vec<f32>>> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(duration_secs);
    loop {
        let item = tokio::select! {
            item = playing.next() => item,
            () = tokio::time::sleep_until(deadline) => break,
        };
        let Some(item) = item else {
            bail!("{shown}: the stream ended");
        };
        let arrival = unix_micros_now();
        match item.with_context(|| format!("{shown}: stream error"))? {
            PacketItem::Rtp(packet) => {
                let ts = packet.timestamp();
                let payload = MediaPayload::Rtp {
                    data: packet.payload().to_vec(),
                    marker: packet.mark(),
                };
                if packet.stream_id() == video {
                    let unit = video_track.push(VideoPacket {
                        ts_ext: ts.timestamp(),
                        capture: LocalInstant::ZERO,
                        payload,
                    });
                    if let Some(unit) = unit {
                        let tag = (ts.timestamp(), ts.elapsed_secs(), arrival);
                        pictures.push(tag, &unit.frame);
                    }
                } else if packet.stream_id() == audio {
                    let Some(pcm) = audio_track.decoder.decode(payload) else {
                        continue;
                    };
                    // Decoded audio lags its timestamp by the decoder's delay (AAC priming).
                    chunks.push(Timed {
                        ts_ext: ts.timestamp() - audio_delay,
                        elapsed_secs: ts.elapsed_secs()
                            - audio_delay as f64 / f64::from(audio_rate),
                        arrival_unix_micros: arrival,
                        item: pcm.0.iter().map(|&s| f32::from(s) / 32_768.0).collect(),
                    });
                }
            }
            PacketItem::Rtcp(rtcp) => {
                let track = if rtcp.stream_id() == video { 0 } else { 1 };
                let (Some(ts), Some(Ok(Some(sr)))) = (
                    rtcp.rtp_timestamp(),
                    rtcp.pkts().next().map(|p| p.as_sender_report()),
                ) else {
                    continue;
                };
                let ntp = NtpTime::from_bits(sr.ntp_timestamp().0);
                let _ = reports[track].handle_sender_report(ts.timestamp(), ntp);
            }
            _ => {}
        }
    }
    let pictures = timed_pictures(pictures)?;
    Ok(finish(pictures, chunks, &reports, audio_rate))
}

/// What a picture's tag holds: its extended RTP timestamp, its stream time (s) and its arrival
/// (µs since the Unix epoch).
pub(super) type PictureTag = (i64, f64, i64);

/// The decoded pictures with their timing.
pub(super) fn timed_pictures(
    reader: PictureReader<PictureTag>,
) -> anyhow::Result<Vec<Timed<PictureObservation>>> {
    let pictures = reader.finish().map_err(anyhow::Error::msg)?;
    Ok(pictures
        .into_iter()
        .map(
            |((ts_ext, elapsed_secs, arrival_unix_micros), item)| Timed {
                ts_ext,
                elapsed_secs,
                arrival_unix_micros,
                item,
            },
        )
        .collect())
}

/// Gives every item its presentation time (sender-report wallclock when both tracks have
/// reports, else RTP-Info-aligned stream time) and works out latencies.
pub(super) fn finish(
    pictures: Vec<Timed<PictureObservation>>,
    chunks: Vec<Timed<Vec<f32>>>,
    reports: &[SenderReportClock; 2],
    audio_rate: u32,
) -> Observations {
    let by_reports = reports.iter().all(SenderReportClock::is_ready);
    let origin = reports[0].rtp_to_ntp_nanos(pictures.first().map_or(0, |p| p.ts_ext));
    let present = |track: usize, ts_ext: i64, elapsed: f64| -> f64 {
        match (by_reports, origin, reports[track].rtp_to_ntp_nanos(ts_ext)) {
            (true, Some(origin), Some(ntp)) => (ntp - origin) as f64 * 1e-9,
            _ => elapsed,
        }
    };
    let pictures: Vec<(PictureObservation, i64)> = pictures
        .into_iter()
        .map(|p| {
            let presented_secs = present(0, p.ts_ext, p.elapsed_secs);
            (
                PictureObservation {
                    presented_secs,
                    ..p.item
                },
                p.arrival_unix_micros,
            )
        })
        .collect();
    let mut beeps = BeepDetector::new(audio_rate);
    let mut chunk_spans = Vec::with_capacity(chunks.len());
    for c in &chunks {
        let start = present(1, c.ts_ext, c.elapsed_secs);
        beeps.push(start, &c.item);
        let end = start + c.item.len() as f64 / f64::from(audio_rate);
        chunk_spans.push((start, end, c.arrival_unix_micros));
    }
    let video_latency_ms = pictures
        .iter()
        .filter_map(|(p, arrival)| {
            let capture = p.stripe?.capture_unix_micros? as i64;
            Some((arrival - capture) as f64 / 1e3)
        })
        .collect();
    // A beep is captured at the same true instant as its flash: the flash's stripe says when.
    let audio_latency_ms = beeps
        .onsets()
        .iter()
        .filter_map(|&onset| {
            let (_, _, arrival) = chunk_spans
                .iter()
                .find(|(start, end, _)| (*start..*end).contains(&onset))?;
            let flash = pictures
                .iter()
                .filter(|(p, _)| p.flash && (p.presented_secs - onset).abs() < 0.45)
                .min_by(|a, b| {
                    (a.0.presented_secs - onset)
                        .abs()
                        .total_cmp(&(b.0.presented_secs - onset).abs())
                })?;
            let capture = flash.0.stripe?.capture_unix_micros? as i64;
            Some((arrival - capture) as f64 / 1e3)
        })
        .collect();
    Observations {
        pictures: pictures.into_iter().map(|(p, _)| p).collect(),
        beeps,
        timing: if by_reports {
            "sender reports"
        } else {
            "RTP-Info (no sender reports)"
        },
        video_latency_ms,
        audio_latency_ms,
        audio_pacing_ms: Vec::new(),
    }
}
