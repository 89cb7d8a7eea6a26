//! Any sequence of RTP packets, depacketized frames, sender reports, RTP-Info and clock steps
//! into the production `Source`. Invariants checked after every step (retina's fuzzing idea):
//! output stamps strictly increase per track, the next wake-up lies ahead, buffers stay within
//! their caps, and nothing panics.
//!
//! `cargo fuzz run source_sync` (from `fuzz/`).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockstep_sync::null_codecs::FixedChunks;
use lockstep_sync::{
    LatencyProfile, LocalInstant, NtpTime, Source, SourceConfig,
    SourceEvent, SourceInput, TrackKind, VideoAssemble, VideoPacket, VideoUnit,
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
    /// A depacketized frame (the WHIP front end's input).
    Frame {
        video: bool,
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

/// Every video packet is a whole frame; the payload says whether it is a keyframe.
struct Frames;
impl VideoAssemble<bool> for Frames {
    type Frame = ();
    fn push(&mut self, packet: VideoPacket<bool>) -> Option<VideoUnit<()>> {
        Some(VideoUnit {
            capture: packet.capture,
            keyframe: packet.payload,
            frame: (),
        })
    }
}

fuzz_target!(|input: Input| {
    let profile = match input.profile % 3 {
        0 => LatencyProfile::Low,
        1 => LatencyProfile::Balanced,
        _ => LatencyProfile::Smooth,
    };
    let mut source = Source::new(
        SourceConfig::new(profile),
        Some(Frames),
        Some((8_000, FixedChunks(160))),
    );
    let mut last_audio_pts: Option<i64> = None;
    let mut last_video_out: Option<LocalInstant> = None;
    let mut now = LocalInstant::ZERO;

    for step in input.steps {
        let kind = |video: bool| {
            if video {
                TrackKind::Video
            } else {
                TrackKind::Audio
            }
        };
        let input = match step {
            Step::Rtp {
                video,
                ssrc,
                seq,
                ts,
                keyframe,
            } => SourceInput::Rtp {
                kind: kind(video),
                ssrc: u32::from(ssrc),
                seq,
                ts,
                payload: keyframe,
            },
            Step::Frame {
                video,
                ts,
                keyframe,
            } => SourceInput::Frame {
                kind: kind(video),
                rtp_ts: ts,
                payload: keyframe,
            },
            Step::Report {
                video,
                ssrc,
                rtp,
                ntp,
            } => SourceInput::SenderReport {
                kind: kind(video),
                ssrc: u32::from(ssrc),
                rtp_ts: rtp,
                ntp: NtpTime::from_bits(ntp),
            },
            Step::RtpInfo { video, rtptime } => SourceInput::RtpInfo {
                kind: kind(video),
                rtptime,
            },
            Step::Advance { micros } => {
                now = now.add_nanos(i64::from(micros) * 1_000);
                continue;
            }
        };
        source.handle_input(now, input);
        loop {
            match source.poll_output(now) {
                SourceEvent::Audio { out_pts_48k, .. } | SourceEvent::Conceal { out_pts_48k, .. } => {
                    assert!(last_audio_pts.is_none_or(|last| out_pts_48k > last));
                    last_audio_pts = Some(out_pts_48k);
                }
                SourceEvent::Video { out, .. } => {
                    assert!(last_video_out.is_none_or(|last| out > last));
                    last_video_out = Some(out);
                }
                SourceEvent::Drained { next_wakeup } => {
                    // A wake-up in the past would spin the driver.
                    assert!(next_wakeup.is_none_or(|at| at > now));
                    break;
                }
            }
        }
        for kind in [TrackKind::Audio, TrackKind::Video] {
            let (held, cap) = source.track_buffered(kind).unwrap_or_default();
            assert!(held <= cap);
        }
    }
});
