//! The output half of one source: decoded audio through the [`AudioRetimer`], complete frames
//! through the [`VideoScheduler`], both measured by the [`Watchdog`], which shifts video to
//! follow audio. Targets come from [`SourceSync::output_time`](crate::SourceSync::output_time).

use std::time::Duration;

use crate::{
    AudioPlan, AudioRetimer, LocalInstant, RetimerOutput, VideoMode, VideoOutput, VideoScheduler,
    Watchdog, WatchdogStats,
};

/// What leaves the source, polled until `Drained`.
#[derive(Debug, Clone, PartialEq)]
pub enum StageOutput<V> {
    /// A video frame to send now, stamped `out` on the output timeline.
    Video {
        out: LocalInstant,
        keyframe: bool,
        payload: V,
    },
    /// The audio clock went on without input: emit `samples` of concealment at `out_pts`.
    Conceal {
        out_pts: i64,
        samples: u32,
    },
    /// Input stopped for long: the output skips `samples` from `out_pts` (timestamps jump).
    Gap {
        out_pts: i64,
        samples: u64,
    },
    Drained {
        next_wakeup: Option<LocalInstant>,
    },
}

/// Retimer, scheduler and watchdog of one source, wired together.
#[derive(Debug)]
pub struct OutputStage<V> {
    retimer: AudioRetimer,
    scheduler: VideoScheduler<V>,
    watchdog: Watchdog,
}

impl<V> OutputStage<V> {
    /// `max_video_late`: the latency cap beyond which a frame is dropped.
    pub fn new(mode: VideoMode, max_video_late: Duration) -> Self {
        OutputStage {
            retimer: AudioRetimer::new(),
            scheduler: VideoScheduler::new(mode, max_video_late),
            watchdog: Watchdog::new(),
        }
    }

    /// A decoded audio chunk whose first sample belongs at `target`. Returns how to resample it
    /// and where it lands (`retimer().out_time(plan.out_pts)`).
    pub fn handle_audio(&mut self, target: LocalInstant, samples: u32, rate_hz: u32) -> AudioPlan {
        let plan = self.retimer.handle_chunk(target, samples, rate_hz);
        self.watchdog.handle_audio_error(plan.error_nanos);
        plan
    }

    /// A complete frame whose capture belongs at `target` (before the watchdog's shift).
    pub fn handle_video(&mut self, target: LocalInstant, keyframe: bool, payload: V) {
        let shifted = target.add_nanos(self.watchdog.video_shift_nanos());
        self.scheduler.handle_frame(shifted, keyframe, payload);
    }

    /// A lost packet broke the frame being assembled.
    pub fn handle_video_loss(&mut self) {
        self.scheduler.handle_loss();
    }

    pub fn poll_output(&mut self, now: LocalInstant) -> StageOutput<V> {
        loop {
            match self.scheduler.poll_output(now) {
                VideoOutput::Frame {
                    out,
                    target,
                    keyframe,
                    payload,
                } => {
                    let unshifted = target.add_nanos(-self.watchdog.video_shift_nanos());
                    self.watchdog.handle_video_error(out.nanos_since(unshifted));
                    return StageOutput::Video {
                        out,
                        keyframe,
                        payload,
                    };
                }
                VideoOutput::Dropped { .. } => continue,
                VideoOutput::Drained {
                    next_wakeup: video_wakeup,
                } => {
                    return match self.retimer.poll_output(now) {
                        RetimerOutput::Conceal { out_pts, samples } => {
                            StageOutput::Conceal { out_pts, samples }
                        }
                        RetimerOutput::Gap { out_pts, samples } => {
                            StageOutput::Gap { out_pts, samples }
                        }
                        RetimerOutput::Drained {
                            next_wakeup: audio_wakeup,
                        } => StageOutput::Drained {
                            next_wakeup: [video_wakeup, audio_wakeup].into_iter().flatten().min(),
                        },
                    }
                }
            }
        }
    }

    pub fn retimer(&self) -> &AudioRetimer {
        &self.retimer
    }

    pub fn scheduler(&self) -> &VideoScheduler<V> {
        &self.scheduler
    }

    pub fn watchdog_stats(&self) -> WatchdogStats {
        self.watchdog.stats()
    }

    /// The residual audio-video offset at the output (positive: audio late), once both tracks
    /// have been seen.
    pub fn offset_nanos(&self) -> Option<i64> {
        self.watchdog.offset_nanos()
    }
}
