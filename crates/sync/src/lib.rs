//! Lockstep's synchronization core: pure, sans-IO, deterministic.
//!
//! Nothing here opens a socket, spawns a thread or reads a clock. Every time is an argument, every
//! input is a `handle_*` call and every output is polled with `poll_*` until it reports
//! `Drained { next_wakeup }`, the instant at which to poll again. Because time is an argument, the
//! test suite runs hours of cameras with drifting clocks over jittery, lossy networks in seconds.
//!
//! The pipeline for one source (see `design/sync.md`):
//!
//! 1. [`SourceSync`] takes RTP packets, RTCP sender reports and RTP-Info. Per track a
//!    [`TrackTimeline`] unwraps sequence numbers and timestamps (and notices restarts), a
//!    [`JitterBuffer`] restores order and declares losses, and the [`SourceTimeline`] maps every
//!    track onto one capture timeline ([`SenderReportClock`] + [`SkewEstimator`]). It keeps the
//!    source's playout delay: `output = capture + delay`, the same for every track.
//! 2. The [`OutputStage`]: decoded audio goes through the [`AudioRetimer`] (resample ratio and
//!    concealment: the audio clock is the master and never stalls); frames go through the
//!    [`VideoScheduler`] (hold early, drop late). The [`Watchdog`] measures the residual offset
//!    at the output and shifts video to follow audio.
//!
//! # A run loop
//!
//! ```
//! use lockstep_sync::{LatencyProfile, LocalInstant, SourceOutput, SourceSync, TrackKind};
//!
//! let mut source = SourceSync::<Vec<u8>>::new(LatencyProfile::Low);
//! let audio = source.add_track(TrackKind::Audio, 8_000);
//!
//! // The driver maps its monotonic clock onto LocalInstant and calls in on every event.
//! let now = LocalInstant::from_millis(1_000);
//! source
//!     .handle_rtp(now, audio, 0x1234, 1, 160, vec![0xd5; 160])
//!     .expect("first packet starts the timeline");
//!
//! // Then drains every output; the last one says when to come back.
//! let mut packets = 0;
//! let next_wakeup = loop {
//!     match source.poll_output(now) {
//!         SourceOutput::Packet(p) => {
//!             // Depacketize/decode p.payload; its output instant is:
//!             let _out = source.output_time(p.capture);
//!             packets += 1;
//!         }
//!         SourceOutput::Lost { .. } | SourceOutput::Resync { .. } => {}
//!         SourceOutput::Drained { next_wakeup } => break next_wakeup,
//!     }
//! };
//! assert_eq!(packets, 1);
//! assert_eq!(next_wakeup, None); // nothing pending: wait for the next packet
//! ```
#![forbid(unsafe_code)]

mod audio_retimer;
mod delay_window;
mod follower;
mod jitter_buffer;
mod latency_profile;
mod line_fit;
pub mod null_codecs;
mod output_stage;
mod producer_clock;
mod recent_max;
mod release_lag;
mod rtp_timeline;
mod sender_report_clock;
mod skew;
mod source;
mod source_sync;
mod source_timeline;
mod time;
mod video_scheduler;
mod watchdog;

pub use audio_retimer::{
    AudioPlan, AudioRetimer, RetimerOutput, RetimerStats, CONCEAL_BLOCK_SAMPLES, DLL_BANDWIDTH_HZ,
    MAX_CONCEAL_NANOS, MAX_RATE_CORRECTION, OUTPUT_RATE_HZ, STEP_THRESHOLD_NANOS,
};
pub use jitter_buffer::{
    Insertion, JitterBuffer, JitterOutput, JitterStats, ReleasedPacket, DEFAULT_MAX_PACKETS,
    DELAY_PERCENTILE, DELAY_WINDOW_NANOS,
};
pub use latency_profile::{LatencyProfile, UnknownLatencyProfile};
pub use output_stage::{OutputStage, StageOutput};
pub use producer_clock::ProducerClock;
pub use release_lag::ReleaseLag;
pub use rtp_timeline::{
    ResyncReason, SequenceUnwrapper, TimelineRejection, TimestampUnwrapper, TrackTimeline,
    UnwrappedPacket, MAX_BACKWARD_JUMP_SECS, MAX_DROPOUT_PACKETS, MAX_FORWARD_JUMP_SECS,
    MAX_MISORDER_PACKETS,
};
pub use sender_report_clock::{
    SenderReportClock, SenderReportRejection, SENDER_REPORTS_KEPT, SENDER_REPORT_MAX_RATE_ERROR,
    SENDER_REPORT_REJECTS_BEFORE_RESET,
};
pub use skew::{SkewEstimator, SkewTuning, SKEW_SMOOTHING, SKEW_WINDOW_NANOS, SKEW_WINDOW_PACKETS};
pub use source::{
    AudioChunk, AudioDecode, Source, SourceConfig, SourceEvent, SourceInput, SourceStats,
    VideoAssemble, VideoPacket, VideoUnit, FRAME_SSRC, VIDEO_RATE_HZ,
};
pub use source_sync::{
    ReportError, SourceOutput, SourceSync, SyncedPacket, TrackKind, PROCESSING_MARGIN_NANOS,
};
pub use source_timeline::{ClockSource, SourceTimeline, MAX_SLEW_NANOS_PER_SEC};
pub use time::{LocalInstant, MediaTime, NtpTime};
pub use video_scheduler::{DropReason, VideoMode, VideoOutput, VideoScheduler, VideoStats};
pub use watchdog::{Watchdog, WatchdogStats, WATCHDOG_THRESHOLD_NANOS};
