//! Any sequence of RTP packets, sender reports, RTP-Info and clock steps into one source, through
//! the whole output stage. Invariants checked after every step (retina's fuzzing idea):
//! released sequence numbers and output stamps strictly increase per track, buffers stay within
//! their caps, and nothing panics.
//!
//! `cargo fuzz run source_sync` (from `fuzz/`).

#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockstep_sync::{
    AudioRetimer, LatencyProfile, LocalInstant, NtpTime, RetimerOutput, SourceOutput, SourceSync,
    TrackKind, VideoMode, VideoOutput, VideoScheduler,
};

#[derive(Debug, Arbitrary)]
enum Step {
    Rtp {
        video: bool,
        ssrc: u8,
        seq: u16,
        ts: u32,
        keyframe: bool,
    },
    Report {
        video: bool,
        ssrc: u8,
        rtp: u32,
        ntp: u64,
    },
    RtpInfo {
        video: bool,
        rtptime: u32,
    },
    Advance {
        micros: u32,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    profile: u8,
    steps: Vec<Step>,
}

fuzz_target!(|input: Input| {
    let profile = match input.profile % 3 {
        0 => LatencyProfile::Low,
        1 => LatencyProfile::Balanced,
        _ => LatencyProfile::Smooth,
    };
    let mut sync = SourceSync::<bool>::new(profile);
    let audio = sync.add_track(TrackKind::Audio, 8_000);
    let video = sync.add_track(TrackKind::Video, 90_000);
    let mut retimer = AudioRetimer::new();
    let mut scheduler = VideoScheduler::new(VideoMode::Passthrough, Duration::from_millis(200));
    let mut last_seq: HashMap<usize, i64> = HashMap::new();
    let mut last_audio_pts: Option<i64> = None;
    let mut last_video_out: Option<LocalInstant> = None;
    let mut now = LocalInstant::ZERO;

    for step in input.steps {
        let track = |v: bool| if v { video } else { audio };
        match step {
            Step::Rtp {
                video: v,
                ssrc,
                seq,
                ts,
                keyframe,
            } => {
                let _ = sync.handle_rtp(now, track(v), u32::from(ssrc), seq, ts, keyframe);
            }
            Step::Report {
                video: v,
                ssrc,
                rtp,
                ntp,
            } => {
                let _ = sync.handle_sender_report(
                    now,
                    track(v),
                    u32::from(ssrc),
                    rtp,
                    NtpTime::from_bits(ntp),
                );
            }
            Step::RtpInfo { video: v, rtptime } => sync.handle_rtp_info(now, track(v), rtptime),
            Step::Advance { micros } => now = now.add_nanos(i64::from(micros) * 1_000),
        }
        loop {
            match sync.poll_output(now) {
                SourceOutput::Packet(p) => {
                    if let Some(last) = last_seq.insert(p.track, p.seq_ext) {
                        assert!(p.seq_ext > last);
                    }
                    let target = sync.output_time(p.capture);
                    if p.track == audio {
                        let plan = retimer.handle_chunk(target, 160, 8_000);
                        if plan.output_samples > 0 {
                            assert!(last_audio_pts.is_none_or(|last| plan.out_pts > last));
                            last_audio_pts = Some(plan.out_pts);
                        }
                    } else {
                        scheduler.handle_frame(target, p.payload, p.payload);
                    }
                }
                SourceOutput::Drained { .. } => break,
                _ => {}
            }
        }
        loop {
            match retimer.poll_output(now) {
                RetimerOutput::Conceal { out_pts, .. } | RetimerOutput::Gap { out_pts, .. } => {
                    assert!(last_audio_pts.is_none_or(|last| out_pts > last));
                    last_audio_pts = Some(out_pts);
                }
                RetimerOutput::Drained { .. } => break,
            }
        }
        loop {
            match scheduler.poll_output(now) {
                VideoOutput::Frame { out, .. } => {
                    assert!(last_video_out.is_none_or(|last| out > last));
                    last_video_out = Some(out);
                }
                VideoOutput::Dropped { .. } => {}
                VideoOutput::Drained { .. } => break,
            }
        }
        for t in [audio, video] {
            let (held, cap) = sync.track_buffered(t);
            assert!(held <= cap);
        }
    }
});
