//! The one place where media waits for its output instant: a due-ordered queue on a thread of
//! its own that publishes each frame to its source's feed when it falls due.
//!
//! An OS thread's timed wait is accurate to tens of microseconds where the async runtime's timer
//! rounds up to the next millisecond, and packet pacing is what a receiver's jitter buffer sizes
//! itself on. Audio is encoded ahead of its output instant (by up to the playout delay) and must
//! not be published early: a WebRTC sender report is extrapolated from the last frame written,
//! which must not lie in the future (str0m reports RTP time 0 then, and a browser's lip sync
//! goes seconds off).
//!
//! One thread serves every source. A thread per source woke twice per frame (once for the frame
//! handed to it, once at its due instant): with 100 cameras that was ~16,000 wake-ups a second
//! and a seventh of the server's CPU (`bench/RESULTS.md`). The shared thread is woken by a new
//! frame only when it becomes the earliest held.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use lockstep_media::{LiveFrame, SourceFeed};

/// One frame in the queue: due first, then in the order scheduled.
struct Held {
    due: Instant,
    order: u64,
    feed: Arc<SourceFeed>,
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

#[derive(Default)]
struct Queue {
    held: BinaryHeap<Reverse<Held>>,
    scheduled: u64,
}

/// The queue every pacer shares, and the thread that empties it.
#[derive(Default)]
struct PacerThread {
    queue: Mutex<Queue>,
    /// Signalled when a frame becomes the earliest held.
    earlier: Condvar,
}

impl PacerThread {
    /// The process's pacer thread, started on first use; it lives as long as the process.
    fn get() -> std::io::Result<Arc<PacerThread>> {
        static STARTED: Mutex<Option<Arc<PacerThread>>> = Mutex::new(None);
        let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(thread) = started.as_ref() {
            return Ok(thread.clone());
        }
        let thread = PacerThread::start()?;
        *started = Some(thread.clone());
        Ok(thread)
    }

    /// A new pacer thread (the process shares one; tests start their own).
    fn start() -> std::io::Result<Arc<PacerThread>> {
        let thread = Arc::new(PacerThread::default());
        let running = thread.clone();
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || running.run())?;
        Ok(thread)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Frames are published outside the lock: a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut due_now = Vec::new();
        let mut queue = self.lock();
        loop {
            let now = Instant::now();
            while queue.held.peek().is_some_and(|Reverse(h)| h.due <= now) {
                due_now.extend(queue.held.pop());
            }
            if !due_now.is_empty() {
                // Publishing wakes viewers and recorders: not while schedulers wait for the lock.
                drop(queue);
                for Reverse(h) in due_now.drain(..) {
                    h.feed.publish(h.frame);
                }
                queue = self.lock();
                continue;
            }
            queue = match queue.held.peek() {
                Some(Reverse(next)) => {
                    let wait = next.due.saturating_duration_since(now);
                    self.earlier
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .earlier
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// A source's pacer. Frames it holds still go out on time after it is dropped.
pub struct Pacer {
    feed: Arc<SourceFeed>,
    thread: Arc<PacerThread>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer").finish_non_exhaustive()
    }
}

impl Pacer {
    /// A pacer publishing to `feed`; fails only if the shared thread cannot be started.
    pub fn new(feed: Arc<SourceFeed>) -> std::io::Result<Pacer> {
        Ok(Pacer {
            feed,
            thread: PacerThread::get()?,
        })
    }

    #[cfg(test)]
    fn on_own_thread(feed: Arc<SourceFeed>) -> Pacer {
        Pacer {
            feed,
            thread: PacerThread::start().unwrap(),
        }
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
        let mut queue = self.thread.lock();
        let earliest = queue
            .held
            .peek()
            .is_none_or(|Reverse(next)| release < next.due);
        queue.scheduled += 1;
        let order = queue.scheduled;
        queue.held.push(Reverse(Held {
            due: release,
            order,
            feed: self.feed.clone(),
            frame,
        }));
        drop(queue);
        if earliest {
            self.thread.earlier.notify_one();
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
        let pacer = Pacer::on_own_thread(feed.clone());
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
    fn a_source_s_earlier_frame_is_not_held_behind_another_s_later_one() {
        let (late_feed, early_feed) = (Arc::new(SourceFeed::new()), Arc::new(SourceFeed::new()));
        let mut early_sub = early_feed.subscribe();
        let late = Pacer::on_own_thread(late_feed);
        let early = Pacer {
            feed: early_feed,
            thread: late.thread.clone(),
        };
        // The thread is idle, waiting for a first frame.
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        late.schedule(opus(start + Duration::from_secs(1), 1));
        early.schedule(opus(start + Duration::from_millis(20), 2));
        let frame = next(&mut early_sub, Duration::from_secs(2)).expect("the early frame");
        assert_eq!(frame.pts, 2);
        // Without the wake-up it would wait for the 1 s frame.
        assert!(
            start.elapsed() < Duration::from_millis(800),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn dropping_the_pacer_still_publishes_what_it_holds() {
        let feed = Arc::new(SourceFeed::new());
        let mut sub = feed.subscribe();
        let pacer = Pacer::on_own_thread(feed.clone());
        pacer.schedule(opus(Instant::now() + Duration::from_millis(30), 7));
        drop(pacer);
        let frame = next(&mut sub, Duration::from_secs(1)).expect("held frame");
        assert_eq!(frame.pts, 7);
    }
}
