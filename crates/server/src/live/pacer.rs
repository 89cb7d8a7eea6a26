//! The one place where a source's media waits for its output instant: a due-ordered queue on
//! a thread of its own that publishes each frame to the source's feed when it falls due.
//!
//! An OS thread's timed wait is accurate to tens of microseconds where the async runtime's timer
//! rounds up to the next millisecond, and packet pacing is what a receiver's jitter buffer sizes
//! itself on. Audio is encoded ahead of its output instant (by up to the playout delay) and must
//! not be published early: a WebRTC sender report is extrapolated from the last frame written,
//! which must not lie in the future (str0m reports RTP time 0 then, and a browser's lip sync
//! goes seconds off).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use lockstep_media::{LiveFrame, SourceFeed};

/// One frame in the queue: due first, then in the order scheduled.
struct Held {
    due: Instant,
    order: u64,
    frame: LiveFrame,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// A source's pacer; dropping it publishes what is held when due and stops the thread.
#[derive(Debug)]
pub struct Pacer {
    commands: Option<Sender<(LiveFrame, Instant)>>,
    thread: Option<JoinHandle<()>>,
}

impl Pacer {
    pub fn spawn(name: &str, feed: Arc<SourceFeed>) -> std::io::Result<Pacer> {
        // Each message: a frame and the instant to publish it.
        let (commands, rx) = channel::<(LiveFrame, Instant)>();
        let thread = std::thread::Builder::new()
            .name(format!("pacer-{name}"))
            .spawn(move || {
                let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
                let mut order = 0u64;
                let mut finishing = false;
                loop {
                    let now = Instant::now();
                    while held.peek().is_some_and(|Reverse(h)| h.due <= now) {
                        if let Some(Reverse(h)) = held.pop() {
                            feed.publish(h.frame);
                        }
                    }
                    let command = match (held.peek(), finishing) {
                        (None, true) => return,
                        // The pacer was dropped: what it holds still goes out on time.
                        (Some(Reverse(next)), true) => {
                            std::thread::sleep(next.due.saturating_duration_since(now));
                            None
                        }
                        (Some(Reverse(next)), false) => {
                            match rx.recv_timeout(next.due.saturating_duration_since(now)) {
                                Ok(command) => Some(command),
                                Err(RecvTimeoutError::Timeout) => None,
                                Err(RecvTimeoutError::Disconnected) => {
                                    finishing = true;
                                    None
                                }
                            }
                        }
                        (None, false) => match rx.recv() {
                            Ok(command) => Some(command),
                            Err(_) => return,
                        },
                    };
                    if let Some((frame, due)) = command {
                        order += 1;
                        held.push(Reverse(Held { due, order, frame }));
                    }
                }
            })?;
        Ok(Pacer {
            commands: Some(commands),
            thread: Some(thread),
        })
    }

    /// Publishes `frame` at its due instant (at once if that has passed).
    pub fn schedule(&self, frame: LiveFrame) {
        let due = frame.due;
        self.schedule_at(frame, due);
    }

    /// Publishes `frame` at `release`, a fixed time after its due instant: media that can only
    /// exist some time after its own instant (an encoded audio frame needs all of its input)
    /// leaves evenly spaced instead of whenever its input happened to arrive.
    pub fn schedule_at(&self, frame: LiveFrame, release: Instant) {
        if let Some(commands) = &self.commands {
            let _ = commands.send((frame, release));
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_media::LiveMedia;
    use std::time::Duration;

    fn opus(due: Instant, pts: i64) -> LiveFrame {
        LiveFrame {
            media: LiveMedia::Opus,
            due,
            pts,
            data: Arc::from(&[0xfc_u8][..]),
        }
    }

    fn next(sub: &mut lockstep_media::FeedSubscription, within: Duration) -> Option<LiveFrame> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(frame) = sub.live.try_recv() {
                return Some(frame);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        None
    }

    #[test]
    fn frames_leave_in_due_order_and_not_before_due() {
        let feed = Arc::new(SourceFeed::new());
        let mut sub = feed.subscribe();
        let pacer = Pacer::spawn("test", feed.clone()).unwrap();
        let start = Instant::now();
        // Scheduled out of order; ties keep the order they were scheduled in.
        pacer.schedule(opus(start + Duration::from_millis(60), 3));
        pacer.schedule(opus(start + Duration::from_millis(20), 1));
        pacer.schedule(opus(start + Duration::from_millis(20), 2));
        pacer.schedule(opus(start, 0));
        let mut got = Vec::new();
        while got.len() < 4 {
            let frame = next(&mut sub, Duration::from_secs(2)).expect("a frame");
            assert!(Instant::now() >= frame.due, "published before due");
            got.push(frame.pts);
        }
        assert_eq!(got, [0, 1, 2, 3]);
    }

    #[test]
    fn dropping_the_pacer_still_publishes_what_it_holds() {
        let feed = Arc::new(SourceFeed::new());
        let mut sub = feed.subscribe();
        let pacer = Pacer::spawn("test", feed.clone()).unwrap();
        pacer.schedule(opus(Instant::now() + Duration::from_millis(30), 7));
        drop(pacer);
        let frame = next(&mut sub, Duration::from_secs(1)).expect("held frame");
        assert_eq!(frame.pts, 7);
    }
}
