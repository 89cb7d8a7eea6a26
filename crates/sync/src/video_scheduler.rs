//! Video follows the audio clock: each frame goes out at its target (capture time + playout
//! delay); an early frame waits, a frame later than the cap is dropped. When frames are passed
//! through undecoded, a dropped frame breaks every frame that references it, so dropping goes on
//! until the next keyframe (the GOP boundary); decoded frames are independent and drop alone.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::duration_nanos;
use crate::LocalInstant;

/// Whether frames are forwarded as encoded or as decoded pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoMode {
    Passthrough,
    Decoded,
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Later than the cap.
    Late,
    /// Depends on a dropped frame: waiting for a keyframe.
    AwaitingKeyframe,
    /// Before the stream's first keyframe (a session joined mid-GOP): nothing was lost, the
    /// picture has not begun.
    BeforeFirstKeyframe,
}

/// Outputs of [`VideoScheduler::poll_output`], polled until `Drained`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoOutput<T> {
    /// Send the frame now, stamped `out` on the output timeline (strictly increasing).
    Frame {
        out: LocalInstant,
        target: LocalInstant,
        keyframe: bool,
        payload: T,
    },
    Dropped {
        target: LocalInstant,
        reason: DropReason,
    },
    Drained {
        next_wakeup: Option<LocalInstant>,
    },
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoStats {
    pub frames: u64,
    pub dropped_late: u64,
    pub dropped_awaiting_keyframe: u64,
    /// Frames before the first keyframe, which no decoder could use: not counted as dropped.
    pub skipped_before_first_keyframe: u64,
    /// Frames whose stamp was moved forward to keep stamps increasing.
    pub restamped: u64,
}

#[derive(Debug, Clone)]
struct Pending<T> {
    target: LocalInstant,
    keyframe: bool,
    payload: T,
}

/// Schedules one video track's frames on the output timeline.
#[derive(Debug, Clone)]
pub struct VideoScheduler<T> {
    mode: VideoMode,
    max_late_nanos: i64,
    queue: VecDeque<Pending<T>>,
    last_out: Option<LocalInstant>,
    awaiting_keyframe: bool,
    /// A keyframe has gone out (or been dropped late): later waits are losses.
    started: bool,
    stats: VideoStats,
}

/// The smallest step between two output stamps.
const MIN_STAMP_STEP_NANOS: i64 = 1_000;

impl<T> VideoScheduler<T> {
    /// `max_late` is the latency cap: a frame this far past its target is dropped.
    pub fn new(mode: VideoMode, max_late: Duration) -> Self {
        VideoScheduler {
            mode,
            max_late_nanos: duration_nanos(max_late),
            queue: VecDeque::new(),
            last_out: None,
            awaiting_keyframe: mode == VideoMode::Passthrough,
            started: mode == VideoMode::Decoded,
            stats: VideoStats::default(),
        }
    }

    /// A complete frame (in decode order) that should be output at `target`.
    pub fn handle_frame(&mut self, target: LocalInstant, keyframe: bool, payload: T) {
        self.queue.push_back(Pending {
            target,
            keyframe,
            payload,
        });
    }

    /// The decoder's reference chain broke (lost packets): drop until a keyframe.
    pub fn handle_loss(&mut self) {
        if self.mode == VideoMode::Passthrough {
            self.awaiting_keyframe = true;
        }
    }

    pub fn poll_output(&mut self, now: LocalInstant) -> VideoOutput<T> {
        let Some(head) = self.queue.front() else {
            return VideoOutput::Drained { next_wakeup: None };
        };
        let (target, keyframe) = (head.target, head.keyframe);
        if keyframe {
            self.awaiting_keyframe = false;
            self.started = true;
        }
        if self.awaiting_keyframe {
            self.queue.pop_front();
            let reason = if self.started {
                self.stats.dropped_awaiting_keyframe += 1;
                DropReason::AwaitingKeyframe
            } else {
                self.stats.skipped_before_first_keyframe += 1;
                DropReason::BeforeFirstKeyframe
            };
            return VideoOutput::Dropped { target, reason };
        }
        if now.nanos_since(target) > self.max_late_nanos {
            self.queue.pop_front();
            self.stats.dropped_late += 1;
            self.handle_loss();
            return VideoOutput::Dropped {
                target,
                reason: DropReason::Late,
            };
        }
        if now < target {
            return VideoOutput::Drained {
                next_wakeup: Some(target),
            };
        }
        let Some(frame) = self.queue.pop_front() else {
            return VideoOutput::Drained { next_wakeup: None };
        };
        let floor = self
            .last_out
            .map(|last| last.add_nanos(MIN_STAMP_STEP_NANOS));
        let out = match floor {
            Some(floor) if floor > target => {
                self.stats.restamped += 1;
                floor
            }
            _ => target,
        };
        self.last_out = Some(out);
        self.stats.frames += 1;
        VideoOutput::Frame {
            out,
            target,
            keyframe: frame.keyframe,
            payload: frame.payload,
        }
    }

    /// Frames waiting for their time.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn stats(&self) -> VideoStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: i64) -> LocalInstant {
        LocalInstant::from_millis(v)
    }

    #[test]
    fn early_frames_wait_for_their_time() {
        let mut s = VideoScheduler::new(VideoMode::Passthrough, Duration::from_millis(80));
        s.handle_frame(ms(100), true, 1);
        assert_eq!(
            s.poll_output(ms(50)),
            VideoOutput::Drained {
                next_wakeup: Some(ms(100))
            }
        );
        let VideoOutput::Frame { out, payload, .. } = s.poll_output(ms(100)) else {
            panic!("frame expected");
        };
        assert_eq!((out, payload), (ms(100), 1));
    }

    #[test]
    fn passthrough_drops_late_frames_until_the_next_keyframe() {
        let mut s = VideoScheduler::new(VideoMode::Passthrough, Duration::from_millis(80));
        s.handle_frame(ms(0), true, 0);
        s.handle_frame(ms(33), false, 1);
        s.handle_frame(ms(66), false, 2);
        s.handle_frame(ms(100), true, 3);
        // Everything arrives at 150 ms: frame 0 is 150 ms late (dropped), 1 and 2 depend on it.
        let mut sent = Vec::new();
        let mut dropped = Vec::new();
        loop {
            match s.poll_output(ms(150)) {
                VideoOutput::Frame { payload, .. } => sent.push(payload),
                VideoOutput::Dropped { reason, .. } => dropped.push(reason),
                VideoOutput::Drained { .. } => break,
            }
        }
        assert_eq!(sent, vec![3]);
        assert_eq!(
            dropped,
            vec![
                DropReason::Late,
                DropReason::AwaitingKeyframe,
                DropReason::AwaitingKeyframe
            ]
        );
    }

    #[test]
    fn frames_before_the_first_keyframe_are_skipped_not_dropped() {
        // A session joined mid-GOP: two frames that need an earlier keyframe, then one.
        let mut s = VideoScheduler::new(VideoMode::Passthrough, Duration::from_millis(80));
        for (i, keyframe) in [false, false, true, false, false, true]
            .into_iter()
            .enumerate()
        {
            s.handle_frame(ms(i as i64 * 33), keyframe, i);
        }
        let mut seen = Vec::new();
        let mut now = 0;
        while seen.len() < 6 {
            match s.poll_output(ms(now)) {
                VideoOutput::Frame { payload, .. } => seen.push(Ok(payload)),
                VideoOutput::Dropped { reason, .. } => seen.push(Err(reason)),
                VideoOutput::Drained { .. } => {
                    now += 33;
                    // Frame 3 is lost on the way: the chain breaks until frame 5.
                    if now == 99 {
                        s.handle_loss();
                    }
                }
            }
        }
        use DropReason::*;
        assert_eq!(
            seen,
            vec![
                Err(BeforeFirstKeyframe),
                Err(BeforeFirstKeyframe),
                Ok(2),
                Err(AwaitingKeyframe),
                Err(AwaitingKeyframe),
                Ok(5)
            ]
        );
        let stats = s.stats();
        assert_eq!(
            (
                stats.skipped_before_first_keyframe,
                stats.dropped_awaiting_keyframe
            ),
            (2, 2)
        );
    }

    #[test]
    fn decoded_mode_drops_only_the_late_frame() {
        let mut s = VideoScheduler::new(VideoMode::Decoded, Duration::from_millis(80));
        s.handle_frame(ms(0), false, 0);
        s.handle_frame(ms(100), false, 1);
        assert!(matches!(
            s.poll_output(ms(120)),
            VideoOutput::Dropped { .. }
        ));
        assert!(matches!(
            s.poll_output(ms(120)),
            VideoOutput::Frame { payload: 1, .. }
        ));
    }

    #[test]
    fn stamps_strictly_increase() {
        let mut s = VideoScheduler::new(VideoMode::Decoded, Duration::from_millis(80));
        s.handle_frame(ms(10), false, 0);
        s.handle_frame(ms(10), false, 1);
        s.handle_frame(ms(5), false, 2);
        let mut last = None;
        while let VideoOutput::Frame { out, .. } = s.poll_output(ms(20)) {
            assert!(last < Some(out));
            last = Some(out);
        }
        assert_eq!(s.stats().restamped, 2);
    }
}
