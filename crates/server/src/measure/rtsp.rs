//! A live RTSP camera, read with lockstep's RTSP client (the transport only: timing is done
//! here). Each track's timestamps are mapped to the sender's wallclock through its RTCP sender
//! reports (the same least-squares clock the sync core uses), so the measurement is the camera's
//! true offset; without reports, RTP-Info alignment is all there is, and the figure is what a
//! report-blind relay would show.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use lockstep_media::beep_flash::{BeepDetector, PictureObservation};
use lockstep_media::{PictureReader, VideoTrack};
use lockstep_rtsp::ingest::{CameraSession, LocalClock, RtpTransport};
use lockstep_sync::{
    AudioDecode as _, LocalInstant, SenderReportClock, SourceInput, TrackKind, VideoAssemble as _,
    VideoPacket, VIDEO_RATE_HZ,
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

/// One track's RTP clock: timestamps extended past their 32-bit wrap, and stream time from
/// the RTP-Info `rtptime` (or the first packet).
struct TrackClock {
    rate_hz: u32,
    start: Option<i64>,
    last: Option<i64>,
}

impl TrackClock {
    fn new(rate_hz: u32) -> Self {
        TrackClock {
            rate_hz,
            start: None,
            last: None,
        }
    }

    /// `ts` extended to be the nearest to the last one.
    fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some(last) => last + i64::from(ts.wrapping_sub(last as u32) as i32),
        };
        self.last = Some(ext);
        self.start.get_or_insert(ext);
        ext
    }

    fn start_at(&mut self, rtptime: u32) {
        if self.start.is_none() {
            self.start = Some(self.extend(rtptime));
        }
    }

    fn elapsed_secs(&self, ts_ext: i64) -> f64 {
        (ts_ext - self.start.unwrap_or(ts_ext)) as f64 / f64::from(self.rate_hz)
    }
}

pub async fn observe(source: &str, duration_secs: f64) -> anyhow::Result<Observations> {
    // Over TCP: the instrument reads packets in arrival order, with no jitter buffer to put
    // UDP's reordering back.
    let (mut session, tracks) =
        CameraSession::connect_with(source, RtpTransport::Tcp, "lockstep-measure").await?;
    // The same depacketizers and decoders as the ingest: what measure reads, lockstep plays.
    let Some(mut audio_track) = tracks.audio else {
        bail!(
            "no audio track measure can decode ({})",
            tracks
                .audio_refused
                .as_deref()
                .unwrap_or("the camera sends no audio")
        );
    };
    let audio_rate = audio_track.rate_hz;
    let audio_delay = i64::from(audio_track.decoder.delay_samples());
    let video = tracks.video;
    let mut pictures = PictureReader::new(video.codec)?;
    let mut video_track = VideoTrack::new(video.codec, video.parameter_sets);
    let mut clocks = [TrackClock::new(VIDEO_RATE_HZ), TrackClock::new(audio_rate)];
    let mut reports = [
        SenderReportClock::new(VIDEO_RATE_HZ),
        SenderReportClock::new(audio_rate),
    ];
    let index = |kind: TrackKind| usize::from(kind == TrackKind::Audio);
    for (kind, rtptime) in session.rtp_info() {
        clocks[index(*kind)].start_at(*rtptime);
    }
    let clock = LocalClock::new();
    let mut chunks: Vec<Timed<Vec<f32>>> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(duration_secs);
    loop {
        let input = tokio::select! {
            input = session.next_input(&clock) => input?.1,
            () = tokio::time::sleep_until(deadline) => break,
        };
        let arrival = unix_micros_now();
        match input {
            SourceInput::Rtp {
                kind, ts, payload, ..
            } => {
                let track = index(kind);
                let ts_ext = clocks[track].extend(ts);
                let elapsed = clocks[track].elapsed_secs(ts_ext);
                if kind == TrackKind::Video {
                    let unit = video_track.push(VideoPacket {
                        ts_ext,
                        capture: LocalInstant::ZERO,
                        payload,
                    });
                    if let Some(unit) = unit {
                        pictures.push((ts_ext, elapsed, arrival), &unit.frame);
                    }
                } else {
                    let Some(pcm) = audio_track.decoder.decode(payload) else {
                        continue;
                    };
                    // Decoded audio lags its timestamp by the decoder's delay (AAC priming).
                    chunks.push(Timed {
                        ts_ext: ts_ext - audio_delay,
                        elapsed_secs: elapsed - audio_delay as f64 / f64::from(audio_rate),
                        arrival_unix_micros: arrival,
                        item: pcm.0.iter().map(|&s| f32::from(s) / 32_768.0).collect(),
                    });
                }
            }
            SourceInput::SenderReport {
                kind, rtp_ts, ntp, ..
            } => {
                let track = index(kind);
                let ts_ext = clocks[track].extend(rtp_ts);
                let _ = reports[track].handle_sender_report(ts_ext, ntp);
            }
            SourceInput::RtpInfo { .. } | SourceInput::Frame { .. } => {}
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
