//! One producer's session on a push source: the hello, then media placed on the source's
//! output timeline and released when due.
//!
//! Timing: the producer's capture times are mapped once onto the local clock (from the hello's
//! `clock_us`, else from the first stamped message); every audio sample and frame then goes out
//! a fixed playout delay after its capture time, so both tracks carry the same capture-to-output
//! mapping and the viewer's lip sync lines them up exactly. Audio is Opus packets released one
//! every 20 ms whatever the producer does (`PushAudio`); raw frames are encoded as they fall due
//! and the last one is repeated when the producer falls silent; H.264 is passed through.

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt as _;
use lockstep_media::{
    i420_from_rgb24, pattern::I420Frame, Codec, H264Encoder, LiveFrame, LiveMedia, Placement,
    PushAudio, PushAudioEvent, SourceFeed, LIVE_RATE_HZ,
};
use lockstep_rtsp::ingest::LocalClock;
use lockstep_sync::{ClockSource, LocalInstant, SourceStats, VIDEO_RATE_HZ};
use serde_json::json;
use tokio::sync::mpsc;

use super::camera::CameraState;
use super::push::ProducerSlot;
use super::push_audio_clock::{AudioClock, ClockEvent, ClockState};
use super::push_protocol::{
    parse_control, parse_hello, parse_media, CaptureClock, Control, MediaKind, VideoDeclaration,
    VideoFormat,
};
use super::source_driver::{from_ticks, ticks};
use super::ws::{
    await_peer_close, close_code, close_message, read_error_code, spawn_writer, Heartbeat, WsPolicy,
};

/// A producer must say hello within this.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Events for the producer waiting to be written; beyond this they are dropped (a producer
/// that does not read its socket must not hold up the media).
const EVENT_QUEUE: usize = 64;
/// Raw frames waiting for the encoder thread.
const ENCODER_QUEUE: usize = 4;
/// A frame due further back than this when it arrives is dropped, not shown late.
const LATE_FRAME: Duration = Duration::from_millis(100);
/// Frames queued ahead of their time, at most (10 s at 30 fps).
const MAX_QUEUED_FRAMES: usize = 300;
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Video bitrate for encoded raw frames, per pixel per frame (512×512 at 30 fps ≈ 1.6 Mbit/s).
const BITS_PER_PIXEL_FRAME: f64 = 0.2;

pub async fn run(socket: WebSocket, source: ProducerSlot, policy: WsPolicy) {
    let (sink, mut stream) = socket.split();
    let (events, writer) = spawn_writer(sink, EVENT_QUEUE);
    let name = source.name().to_owned();
    let (code, reason) = match session(&source, &mut stream, &events, policy).await {
        Ok(reason) => (close_code::NORMAL, reason),
        Err((code, reason)) => (code, reason),
    };
    tracing::info!(source = %name, "producer session ended: {reason}");
    source.handle.feed.clear_cache();
    source.status.send_modify(|s| {
        s.state = CameraState::Waiting;
        s.error = Some(format!("producer left: {reason}"));
    });
    drop(source);
    // Close: our frame, then the peer's (or a timeout), then we drop TCP first.
    let _ = events.send(close_message(code, &reason)).await;
    drop(events);
    await_peer_close(&mut stream).await;
    // Both halves dropped: the server closes TCP first.
    let _ = writer.await;
    drop(stream);
}

type Closing = (u16, String);

fn send_event(events: &mpsc::Sender<Message>, value: serde_json::Value) {
    let _ = events.try_send(Message::Text(value.to_string().into()));
}

async fn session(
    source: &ProducerSlot,
    stream: &mut futures::stream::SplitStream<WebSocket>,
    events: &mpsc::Sender<Message>,
    policy: WsPolicy,
) -> Result<String, Closing> {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, stream.next()).await {
        Err(_) => return Err((close_code::POLICY, "no hello within 10 s".into())),
        Ok(None) => return Ok("closed before the hello".into()),
        Ok(Some(Err(e))) => return Err(read_error_code(&e)),
        Ok(Some(Ok(Message::Text(text)))) => {
            parse_hello(&text).map_err(|e| (close_code::UNSUPPORTED, e))?
        }
        Ok(Some(Ok(Message::Close(_)))) => return Ok("closed before the hello".into()),
        Ok(Some(Ok(_))) => {
            return Err((
                close_code::UNSUPPORTED,
                "the first message must be the text hello".into(),
            ))
        }
    };
    let settings = source.handle.settings.clone();
    let clock = source.clock;
    let delay = settings.profile.fixed_playout_delay();
    let start = clock.now();
    let mut timeline = CaptureClock::new(delay, hello.clock_us, start);
    let feed = source.handle.feed.clone();
    let (clock_events, mut from_clock) = mpsc::unbounded_channel();
    let audio = match hello.audio {
        Some(format) => {
            let audio = PushAudio::new(format, ticks(timeline.output(start), LIVE_RATE_HZ))
                .map_err(|e| (close_code::INTERNAL, e.to_string()))?;
            Some(
                AudioClock::spawn(audio, feed.clone(), clock, clock_events)
                    .map_err(|e| (close_code::INTERNAL, format!("audio clock thread: {e}")))?,
            )
        }
        None => None,
    };
    let mut video = match hello.video {
        Some(decl) => {
            Some(VideoPath::new(decl, feed.clone(), clock).map_err(|e| (close_code::INTERNAL, e))?)
        }
        None => None,
    };
    send_event(
        events,
        json!({
            "type": "ready",
            "latency_ms": delay.as_millis() as u64,
            "audio": hello.audio.map(|a| json!({"rate": a.rate_hz, "channels": a.channels, "out": "opus/48000"})),
            "video": hello.video.map(|v| json!({"width": v.width, "height": v.height, "fps": v.fps, "out": "h264"})),
            "max_message_bytes": hello.max_message_bytes(),
        }),
    );
    source.status.send_modify(|s| {
        s.state = CameraState::Live;
        s.error = None;
        s.sessions += 1;
        // Raw pictures are encoded: what viewers and recordings get is H.264 either way.
        s.video_codec = hello.video.map(|_| Codec::H264.as_str());
        s.audio_codec = hello.audio.map(|_| Codec::Pcm.as_str().to_owned());
    });
    let mut heartbeat = Heartbeat::new(policy, tokio::time::Instant::now());
    let mut stats = SessionStats::default();
    let mut next_stats = Instant::now() + STATS_EVERY;
    loop {
        // Video due now goes out (audio has its own clock thread).
        if let Some(video) = video.as_mut() {
            video.release(clock.now());
        }
        if Instant::now() >= next_stats {
            next_stats += STATS_EVERY;
            let audio_state = audio.as_ref().map(|a| *a.state.borrow());
            send_event(events, stats.json(audio_state, video.as_ref(), delay));
            let sync = sync_stats(&timeline, audio_state, video.as_ref(), delay);
            source.status.send_modify(|s| s.sync = Some(sync));
            stats.headroom_ms = None;
        }
        let wake = video
            .as_ref()
            .and_then(VideoPath::next_due)
            .map_or(next_stats, |at| clock.instant(at).min(next_stats));
        tokio::select! {
            event = from_clock.recv() => match event {
                Some(ClockEvent::Audio(event)) => send_event(events, audio_event_json(&event, &timeline)),
                Some(ClockEvent::Refused(reason)) => return Err((close_code::UNSUPPORTED, reason)),
                None => return Err((close_code::INTERNAL, "the audio clock stopped".into())),
            },
            message = stream.next() => {
                let message = match message {
                    None => return Ok("the producer closed the connection".into()),
                    Some(Err(e)) => return Err(read_error_code(&e)),
                    Some(Ok(message)) => message,
                };
                let arrived = clock.now();
                match message {
                    Message::Binary(bytes) => {
                        heartbeat.message(tokio::time::Instant::now());
                        if bytes.len() > hello.max_message_bytes() {
                            return Err((close_code::TOO_BIG, format!(
                                "a message of {} bytes; this hello allows {}",
                                bytes.len(), hello.max_message_bytes()
                            )));
                        }
                        let media = parse_media(&bytes, &hello)
                            .map_err(|e| (close_code::UNSUPPORTED, e))?;
                        let due = timeline
                            .due(media.capture_us, arrived)
                            .map_err(|e| (close_code::UNSUPPORTED, e))?;
                        stats.note_headroom(due, arrived);
                        match (media.kind, audio.as_ref(), video.as_mut()) {
                            (MediaKind::Audio, Some(audio), _) => {
                                let format = hello.audio.map(|a| a.frame_bytes()).unwrap_or(1);
                                if media.payload.len() % format != 0 {
                                    return Err((close_code::UNSUPPORTED, format!(
                                        "an audio chunk of {} bytes is not whole frames of {format} bytes",
                                        media.payload.len()
                                    )));
                                }
                                let placement = match media.capture_us {
                                    Some(_) => Placement::At(ticks(due, LIVE_RATE_HZ)),
                                    None => Placement::AfterQueued { earliest: ticks(due, LIVE_RATE_HZ) },
                                };
                                audio.push(placement, media.payload);
                            }
                            (MediaKind::Video, _, Some(video)) => {
                                video.push(due, arrived, media.payload).map_err(|e| (close_code::UNSUPPORTED, e))?;
                            }
                            _ => {}
                        }
                    }
                    Message::Text(text) => {
                        heartbeat.message(tokio::time::Instant::now());
                        match parse_control(&text).map_err(|e| (close_code::UNSUPPORTED, e))? {
                            Control::Flush => {
                                let dropped_ms = match audio.as_ref() {
                                    Some(audio) => audio.flush().await,
                                    None => 0,
                                };
                                let dropped_frames = video.as_mut().map_or(0, VideoPath::flush);
                                send_event(events, json!({"type": "flushed", "audio_ms": dropped_ms, "video_frames": dropped_frames}));
                            }
                            Control::End => return Ok("the producer ended the stream".into()),
                            Control::Clock { clock_us } => timeline.handle_clock(clock_us, arrived),
                        }
                    }
                    Message::Pong(_) | Message::Ping(_) => heartbeat.heard(),
                    Message::Close(_) => return Ok("the producer closed the connection".into()),
                }
            }
            beat = heartbeat.next() => if let Some(end) = beat.act(events) { return Err(end) },
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// An audio event for the producer: when it happens in its own clock's µs (`at_us`: the capture
/// time of what plays then), and on the outgoing 48 kHz clock.
fn audio_event_json(event: &PushAudioEvent, timeline: &CaptureClock) -> serde_json::Value {
    let (kind, pts) = match *event {
        PushAudioEvent::SpeakingStarted { pts } => ("speaking_started", pts),
        PushAudioEvent::SpeakingEnded { pts } => ("speaking_ended", pts),
        PushAudioEvent::Underrun { pts } => ("underrun", pts),
    };
    let at_us = timeline.producer_us(from_ticks(pts, LIVE_RATE_HZ));
    json!({ "type": kind, "at_us": at_us, "pts_48k": pts })
}

#[derive(Debug, Default)]
struct SessionStats {
    /// The least time between a message's arrival and its output over the last second: how
    /// close the producer came to being late.
    headroom_ms: Option<f64>,
}

impl SessionStats {
    fn note_headroom(&mut self, due: LocalInstant, arrived: LocalInstant) {
        let ms = (due.as_nanos() - arrived.as_nanos()) as f64 / 1e6;
        self.headroom_ms = Some(self.headroom_ms.map_or(ms, |h: f64| h.min(ms)));
    }

    fn json(
        &self,
        audio: Option<ClockState>,
        video: Option<&VideoPath>,
        delay: Duration,
    ) -> serde_json::Value {
        let counters = audio.map(|a| a.counters);
        json!({
            "type": "stats",
            "latency_ms": delay.as_millis() as u64,
            "headroom_ms": self.headroom_ms.map(|h| (h * 10.0).round() / 10.0),
            "queue_ms": audio.map_or(0, |a| a.queued_ms),
            "audio_packets": counters.map_or(0, |c| c.packets),
            "underruns": counters.map_or(0, |c| c.underruns),
            "late_audio_ms": audio.map_or(0, |a| a.counters.late_samples * 1000 / u64::from(a.rate_hz)),
            "video_frames": video.map_or(0, |v| v.frames),
            "video_repeats": video.map_or(0, |v| v.repeats),
            "video_dropped": video.map_or(0, |v| v.dropped),
        })
    }
}

/// The source's sync state in the form every source kind reports.
fn sync_stats(
    timeline: &CaptureClock,
    audio: Option<ClockState>,
    video: Option<&VideoPath>,
    delay: Duration,
) -> SourceStats {
    let clock = timeline.producer();
    // Both tracks hang on the producer's one clock.
    let drift = clock.drift_ppm();
    let clock_source = if clock.samples() > 1 {
        ClockSource::Producer
    } else {
        ClockSource::Arrival
    };
    SourceStats {
        offset_ms: None,
        audio_drift_ppm: audio.and(drift),
        video_drift_ppm: video.and(drift),
        jitter_ms: clock.jitter().as_secs_f64() * 1e3,
        // TCP: nothing is lost on the way.
        loss_ratio: 0.0,
        latency_ms: delay.as_secs_f64() * 1e3,
        clock_source: clock_source.as_str(),
        video_frames: video.map_or(0, |v| v.frames),
        dropped_frames: video.map_or(0, |v| v.dropped),
        // Producer audio that came after its place was played: silence played instead.
        concealed_ms: audio.map_or(0.0, |a| {
            a.counters.late_samples as f64 * 1e3 / f64::from(a.rate_hz.max(1))
        }),
        // Nothing to correct: both tracks hang on the producer's one clock.
        corrections: 0,
    }
}

/// Where a repeat of the picture due at `last` goes at `now`: on the last interval that is due,
/// once, however many were missed. A repeat per missed interval would be an encode each, all
/// at once, and a producer that came late would make itself later.
fn repeat_at(last: LocalInstant, now: LocalInstant, interval_nanos: i64) -> LocalInstant {
    let missed = (now.nanos_since(last) / interval_nanos.max(1)).max(1);
    last.add_nanos(missed * interval_nanos)
}

enum Picture {
    Raw(I420Frame),
    H264 { annex_b: Vec<u8>, keyframe: bool },
}

struct EncodeJob {
    /// `None`: repeat the last picture.
    picture: Option<I420Frame>,
    due: LocalInstant,
}

/// A push source's video: frames held until due, then encoded (raw) or passed through (H.264).
struct VideoPath {
    decl: VideoDeclaration,
    feed: Arc<SourceFeed>,
    clock: LocalClock,
    queue: VecDeque<(LocalInstant, Picture)>,
    encoder: Option<(SyncSender<EncodeJob>, std::thread::JoinHandle<()>)>,
    last_due: Option<LocalInstant>,
    interval_nanos: i64,
    /// H.264 after a flush or a drop: wait for a keyframe.
    need_keyframe: bool,
    frames: u64,
    repeats: u64,
    dropped: u64,
}

impl VideoPath {
    fn new(
        decl: VideoDeclaration,
        feed: Arc<SourceFeed>,
        clock: LocalClock,
    ) -> Result<Self, String> {
        let encoder = match decl.format {
            VideoFormat::H264 => None,
            VideoFormat::I420 | VideoFormat::Rgb24 => {
                Some(spawn_encoder(decl, feed.clone(), clock)?)
            }
        };
        Ok(VideoPath {
            decl,
            feed,
            clock,
            queue: VecDeque::new(),
            encoder,
            last_due: None,
            interval_nanos: 1_000_000_000 / i64::from(decl.fps),
            need_keyframe: true,
            frames: 0,
            repeats: 0,
            dropped: 0,
        })
    }

    fn push(
        &mut self,
        due: LocalInstant,
        arrived: LocalInstant,
        payload: &[u8],
    ) -> Result<(), String> {
        let picture = match self.decl.format {
            VideoFormat::I420 => Picture::Raw(I420Frame {
                width: self.decl.width,
                height: self.decl.height,
                data: payload.to_vec(),
            }),
            VideoFormat::Rgb24 => Picture::Raw(
                i420_from_rgb24(self.decl.width, self.decl.height, payload)
                    .ok_or("an RGB frame of the wrong size")?,
            ),
            VideoFormat::H264 => Picture::H264 {
                keyframe: lockstep_media::h264::split_annex_b(payload)
                    .iter()
                    .any(|nal| nal.first().is_some_and(|b| b & 0x1f == 5)),
                annex_b: payload.to_vec(),
            },
        };
        if due.as_nanos() < arrived.as_nanos() - LATE_FRAME.as_nanos() as i64
            || self.queue.len() >= MAX_QUEUED_FRAMES
        {
            self.dropped += 1;
            self.need_keyframe = true;
            return Ok(());
        }
        // Out of order frames go where they belong.
        let at = self.queue.partition_point(|(d, _)| *d <= due);
        self.queue.insert(at, (due, picture));
        Ok(())
    }

    /// Drops every frame not yet shown; returns how many.
    fn flush(&mut self) -> usize {
        let n = self.queue.len();
        self.queue.clear();
        n
    }

    fn next_due(&self) -> Option<LocalInstant> {
        let queued = self.queue.front().map(|(d, _)| *d);
        let repeat = self.repeat_due();
        queued.into_iter().chain(repeat).min()
    }

    /// When the last picture is shown again if nothing new comes (raw video only).
    fn repeat_due(&self) -> Option<LocalInstant> {
        self.encoder.as_ref()?;
        self.last_due
            .map(|d| LocalInstant::from_nanos(d.as_nanos() + self.interval_nanos * 3 / 2))
    }

    fn release(&mut self, now: LocalInstant) {
        while self.queue.front().is_some_and(|(d, _)| *d <= now) {
            let Some((due, picture)) = self.queue.pop_front() else {
                break;
            };
            match picture {
                Picture::Raw(frame) => self.encode(Some(frame), due),
                Picture::H264 { annex_b, keyframe } => {
                    if self.need_keyframe && !keyframe {
                        self.dropped += 1;
                        continue;
                    }
                    self.need_keyframe = false;
                    self.frames += 1;
                    self.last_due = Some(due);
                    self.feed.publish(LiveFrame {
                        media: LiveMedia::Video {
                            codec: Codec::H264,
                            keyframe,
                        },
                        due: self.clock.instant(due),
                        pts: ticks(due, VIDEO_RATE_HZ),
                        data: Arc::from(annex_b),
                    });
                }
            }
        }
        // The producer fell silent: show the last picture again.
        if let Some(due) = self
            .last_due
            .filter(|_| self.repeat_due().is_some_and(|r| r <= now))
            .map(|last| repeat_at(last, now, self.interval_nanos))
        {
            self.repeats += 1;
            self.encode(None, due);
        }
    }

    fn encode(&mut self, picture: Option<I420Frame>, due: LocalInstant) {
        let Some((encoder, _)) = &self.encoder else {
            return;
        };
        self.last_due = Some(due);
        match encoder.try_send(EncodeJob { picture, due }) {
            Ok(()) => self.frames += 1,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped += 1,
        }
    }
}

/// The H.264 encoder on a thread of its own (a 512×512 frame takes milliseconds; the session
/// task must not wait for it). It publishes each frame stamped with its due time.
fn spawn_encoder(
    decl: VideoDeclaration,
    feed: Arc<SourceFeed>,
    clock: LocalClock,
) -> Result<(SyncSender<EncodeJob>, std::thread::JoinHandle<()>), String> {
    let bitrate = (decl.width * decl.height) as f64 * f64::from(decl.fps) * BITS_PER_PIXEL_FRAME;
    let (tx, rx) = sync_channel::<EncodeJob>(ENCODER_QUEUE);
    let thread = std::thread::Builder::new()
        .name("push-h264".into())
        .spawn(move || {
            // Set up here: it takes milliseconds the session's first audio must not wait.
            let mut encoder = match H264Encoder::new(decl.fps, bitrate as u32, decl.fps * 2) {
                Ok(encoder) => encoder,
                Err(e) => {
                    tracing::error!("push video encoder: {e}");
                    return;
                }
            };
            let mut last: Option<I420Frame> = None;
            while let Ok(job) = rx.recv() {
                if let Some(picture) = job.picture {
                    last = Some(picture);
                }
                let Some(picture) = last.as_ref() else {
                    continue;
                };
                match encoder.encode(picture) {
                    Ok(encoded) => feed.publish(LiveFrame {
                        media: LiveMedia::Video {
                            codec: Codec::H264,
                            keyframe: encoded.keyframe,
                        },
                        due: clock.instant(job.due),
                        pts: ticks(job.due, VIDEO_RATE_HZ),
                        data: Arc::from(lockstep_media::h264::annex_b(&encoded.nals)),
                    }),
                    Err(e) => tracing::warn!("push video encode: {e}"),
                }
            }
        })
        .map_err(|e| format!("cannot start the video encoder thread: {e}"))?;
    Ok((tx, thread))
}

impl Drop for VideoPath {
    /// The encoder finishes what it has before the session reports the source `waiting`.
    fn drop(&mut self) {
        if let Some((encoder, thread)) = self.encoder.take() {
            drop(encoder);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_repeat_lands_once_on_the_last_due_interval() {
        let ms = LocalInstant::from_millis;
        let interval = 33_333_333;
        // 1.5 intervals after the last picture: the next interval.
        assert_eq!(
            repeat_at(ms(1_000), ms(1_050), interval).as_nanos(),
            ms(1_000).as_nanos() + interval
        );
        // A second behind: one repeat, on the 30th interval, not thirty.
        let due = repeat_at(ms(1_000), ms(2_010), interval);
        assert_eq!(due.as_nanos(), ms(1_000).as_nanos() + 30 * interval);
        assert!(due <= ms(2_010) && ms(2_010).nanos_since(due) < interval);
    }
}
