//! A push source's audio clock: a thread that owns the session's [`PushAudio`] and releases
//! each Opus packet at its due instant. An OS thread's timed wait is accurate to tens of
//! microseconds where the async runtime's timer rounds up to the next millisecond, and packet
//! pacing is what a receiver's jitter buffer sizes itself on. The session task sends it the
//! producer's chunks and flushes; events come back on a channel, counters on a watch.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use lockstep_media::{
    LiveFrame, LiveMedia, OpusPacket, Placement, PushAudio, PushAudioCounters, PushAudioEvent,
    SourceFeed, LIVE_RATE_HZ,
};
use lockstep_rtsp::ingest::LocalClock;
use tokio::sync::{mpsc, oneshot, watch};

use super::source_driver::{from_ticks, ticks};

enum Command {
    Push {
        placement: Placement,
        pcm: Vec<u8>,
    },
    /// Barge-in; answers the ms dropped.
    Flush(oneshot::Sender<u64>),
}

/// What the session hears from the clock.
#[derive(Debug)]
pub enum ClockEvent {
    Audio(PushAudioEvent),
    /// The producer broke a rule (more queued than allowed): the session ends with this.
    Refused(String),
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ClockState {
    pub counters: PushAudioCounters,
    pub queued_ms: u64,
    pub rate_hz: u32,
}

/// The session's handle; dropping it stops the thread.
#[derive(Debug)]
pub struct AudioClock {
    commands: Option<Sender<Command>>,
    pub state: watch::Receiver<ClockState>,
    thread: Option<JoinHandle<()>>,
}

impl AudioClock {
    pub fn spawn(
        mut audio: PushAudio,
        feed: Arc<SourceFeed>,
        clock: LocalClock,
        events: mpsc::UnboundedSender<ClockEvent>,
    ) -> std::io::Result<AudioClock> {
        let (commands, rx) = channel::<Command>();
        let rate_hz = audio.format().rate_hz;
        let (state_tx, state) = watch::channel(ClockState {
            rate_hz,
            ..ClockState::default()
        });
        let thread = std::thread::Builder::new()
            .name("push-audio".into())
            .spawn(move || {
                let mut packets: Vec<OpusPacket> = Vec::new();
                loop {
                    let due = clock.instant(from_ticks(audio.next_due(), LIVE_RATE_HZ));
                    let wait = due.saturating_duration_since(std::time::Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(Command::Push { placement, pcm }) => {
                            if let Err(e) = audio.push(placement, &pcm) {
                                let _ = events.send(ClockEvent::Refused(e.to_string()));
                            }
                        }
                        Ok(Command::Flush(reply)) => {
                            let _ = reply.send(audio.flush());
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let happened =
                        match audio.release(ticks(clock.now(), LIVE_RATE_HZ), &mut packets) {
                            Ok(happened) => happened,
                            Err(e) => {
                                let _ = events.send(ClockEvent::Refused(format!("audio: {e}")));
                                return;
                            }
                        };
                    for packet in packets.drain(..) {
                        feed.publish(LiveFrame {
                            media: LiveMedia::Opus,
                            due: clock.instant(from_ticks(packet.pts, LIVE_RATE_HZ)),
                            pts: packet.pts,
                            data: Arc::from(packet.data),
                        });
                    }
                    for event in happened {
                        let _ = events.send(ClockEvent::Audio(event));
                    }
                    state_tx.send_if_modified(|s| {
                        let now = ClockState {
                            counters: audio.counters(),
                            queued_ms: audio.queued_ms(),
                            rate_hz,
                        };
                        let changed = s.counters != now.counters || s.queued_ms != now.queued_ms;
                        *s = now;
                        changed
                    });
                }
            })?;
        Ok(AudioClock {
            commands: Some(commands),
            state,
            thread: Some(thread),
        })
    }

    pub fn push(&self, placement: Placement, pcm: &[u8]) {
        if let Some(commands) = &self.commands {
            let _ = commands.send(Command::Push {
                placement,
                pcm: pcm.to_vec(),
            });
        }
    }

    /// Drops what is queued; the ms dropped.
    pub async fn flush(&self) -> u64 {
        let (tx, rx) = oneshot::channel();
        if let Some(commands) = &self.commands {
            let _ = commands.send(Command::Flush(tx));
        }
        rx.await.unwrap_or(0)
    }
}

impl Drop for AudioClock {
    fn drop(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
