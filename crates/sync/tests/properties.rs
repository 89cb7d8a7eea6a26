//! Properties that hold for any input: whatever order, duplication, loss or garbage arrives, every
//! track's output is strictly increasing, nothing panics, and no buffer outgrows its cap.

mod sim;

use std::collections::HashMap;

use lockstep_sync::{
    JitterBuffer, JitterOutput, LatencyProfile, LocalInstant, NtpTime, SourceOutput, SourceSync,
    TrackKind,
};
use proptest::prelude::*;
use sim::{Kind, Receiver, Truth, Wire};

const AUDIO_RATE_HZ: u32 = 8_000;

/// One packet of a well-formed stream, and what the network does to it.
#[derive(Debug, Clone)]
struct Fate {
    /// Extra delay on the wire, ms (large values reorder).
    delay_ms: u32,
    dropped: bool,
    duplicated: bool,
}

fn fate() -> impl Strategy<Value = Fate> {
    (
        0u32..300,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(delay_ms, dropped, duplicated)| Fate {
            delay_ms,
            dropped,
            duplicated,
        })
}

/// A raw packet anyone could send: any SSRC of a few, any sequence number, any timestamp.
fn garbage() -> impl Strategy<Value = (usize, u32, u16, u32, u32)> {
    (0usize..2, 0u32..3, any::<u16>(), any::<u32>(), 0u32..2_000)
}

/// One stream's packets: every `interval_ms` from t = 0, `ts_step` ticks apart.
struct StreamShape {
    track: usize,
    ssrc: u32,
    interval_ms: u32,
    ts_step: u32,
    samples: u32,
    keyframe_every: u32,
}

/// Audio every 20 ms and video every 33 ms from t = 0, with their fates, in arrival order.
fn arrivals(audio: &[Fate], video: &[Fate], seq_base: u16, ts_base: u32) -> Vec<(i64, Wire)> {
    let audio_shape = StreamShape {
        track: 0,
        ssrc: 1,
        interval_ms: 20,
        ts_step: 160,
        samples: 160,
        keyframe_every: 1,
    };
    let video_shape = StreamShape {
        track: 1,
        ssrc: 2,
        interval_ms: 33,
        ts_step: 3_000,
        samples: 0,
        keyframe_every: 30,
    };
    let mut out = Vec::new();
    for (shape, fates) in [(audio_shape, audio), (video_shape, video)] {
        for (i, fate) in fates.iter().enumerate().filter(|(_, f)| !f.dropped) {
            let i = i as u32;
            let send_ms = i64::from(i * shape.interval_ms);
            let wire = Wire::Rtp {
                track: shape.track,
                ssrc: shape.ssrc,
                seq: seq_base.wrapping_add(i as u16),
                ts: ts_base.wrapping_add(i * shape.ts_step),
                truth: Truth {
                    capture_nanos: send_ms * 1_000_000,
                    frame_index: u64::from(i),
                    keyframe: i % shape.keyframe_every == 0,
                    marker: true,
                    samples: shape.samples,
                },
            };
            let at = (send_ms + i64::from(fate.delay_ms)) * 1_000_000;
            if fate.duplicated {
                out.push((at + 1_000_000, wire.clone()));
            }
            out.push((at, wire));
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

/// Runs the whole receiving pipeline over the arrivals, checking the cap after every step.
fn run_pipeline(arrivals: Vec<(i64, Wire)>, profile: LatencyProfile) -> Receiver {
    let mut rx = Receiver::new(profile, AUDIO_RATE_HZ, std::time::Duration::ZERO);
    let end = arrivals.last().map_or(0, |(at, _)| *at) + 2_000_000_000;
    let mut pending = arrivals.into_iter().peekable();
    let mut now = 0;
    let mut wakeup: Option<i64> = None;
    while now <= end {
        while pending.peek().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, wire)) = pending.next() {
                rx.receive(LocalInstant::from_nanos(now), wire);
            }
        }
        for kind in [TrackKind::Audio, TrackKind::Video] {
            let (held, cap) = rx.source.track_buffered(kind).unwrap_or_default();
            assert!(held <= cap, "{kind:?} holds {held} > cap {cap}");
        }
        wakeup = rx
            .drain(LocalInstant::from_nanos(now))
            .map(|w| w.as_nanos());
        let next_arrival = pending.peek().map(|(at, _)| *at);
        let next = [next_arrival, wakeup, Some(end + 1)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end + 1);
        now = next.max(now + 1);
    }
    let _ = wakeup;
    rx
}

fn assert_strictly_increasing(rx: &Receiver) {
    for kind in [Kind::Audio, Kind::Video] {
        let stamps: Vec<i64> = rx
            .outputs
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| o.out_nanos)
            .collect();
        for pair in stamps.windows(2) {
            assert!(
                pair[0] < pair[1],
                "{kind:?} output went {} → {}",
                pair[0],
                pair[1]
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_order_loss_or_duplication_gives_increasing_output(
        audio in prop::collection::vec(fate(), 0..200),
        video in prop::collection::vec(fate(), 0..120),
        seq_base in any::<u16>(),
        ts_base in any::<u32>(),
        profile in prop::sample::select(vec![
            LatencyProfile::Low, LatencyProfile::Balanced, LatencyProfile::Smooth,
        ]),
    ) {
        let rx = run_pipeline(arrivals(&audio, &video, seq_base, ts_base), profile);
        assert_strictly_increasing(&rx);
        // Everything delivered in order on a well-behaved stream comes out at most once.
        let audio_out = rx.outputs.iter().filter(|o| o.kind == Kind::Audio).count();
        prop_assert!(audio_out <= audio.len());
        // ...and a stream of any length gets through, however mangled.
        prop_assert!(audio.len() < 20 || audio_out > 0, "nothing of {} chunks came out", audio.len());
    }

    #[test]
    fn garbage_never_panics_and_output_still_increases(
        packets in prop::collection::vec(garbage(), 0..400),
        reports in prop::collection::vec((0usize..2, 0u32..3, any::<u32>(), any::<u64>()), 0..20),
    ) {
        // Released sequence numbers per track must increase whatever comes in.
        let mut sync = SourceSync::<u32>::new(LatencyProfile::Balanced);
        let tracks = [sync.add_track(TrackKind::Audio, 8_000), sync.add_track(TrackKind::Video, 90_000)];
        let mut last_seq: HashMap<usize, i64> = HashMap::new();
        let mut now = LocalInstant::ZERO;
        let mut reports = reports.into_iter();
        for (i, (track, ssrc, seq, ts, gap_us)) in packets.into_iter().enumerate() {
            now = now.add_nanos(i64::from(gap_us) * 1_000);
            let _ = sync.handle_rtp(now, tracks[track], ssrc, seq, ts, i as u32);
            if i % 20 == 0 {
                if let Some((t, ssrc, rtp, ntp)) = reports.next() {
                    let _ = sync.handle_sender_report(now, tracks[t], ssrc, rtp, NtpTime::from_bits(ntp));
                }
            }
            loop {
                match sync.poll_output(now) {
                    SourceOutput::Packet(p) => {
                        if let Some(last) = last_seq.insert(p.track, p.seq_ext) {
                            prop_assert!(p.seq_ext > last, "seq {} after {}", p.seq_ext, last);
                        }
                    }
                    SourceOutput::Drained { .. } => break,
                    _ => {}
                }
            }
            for t in tracks {
                let (held, cap) = sync.track_buffered(t);
                prop_assert!(held <= cap);
            }
        }
    }

    #[test]
    fn jitter_buffer_releases_each_sequence_number_once_in_order(
        order in Just((0i64..300).collect::<Vec<_>>()).prop_shuffle(),
        dups in prop::collection::vec(0i64..300, 0..50),
    ) {
        let mut jb = JitterBuffer::new(8_000, LatencyProfile::Smooth);
        let mut released = Vec::new();
        let mut lost = 0;
        let arrivals = order.iter().chain(dups.iter());
        for (i, &seq) in arrivals.enumerate() {
            let now = LocalInstant::from_millis(i as i64);
            jb.handle_packet(now, seq, seq * 160, ());
            loop {
                match jb.poll_output(now) {
                    JitterOutput::Packet(p) => released.push(p.seq_ext),
                    JitterOutput::Lost { count, .. } => lost += count,
                    JitterOutput::Drained { .. } => break,
                }
            }
        }
        // Flush: far in the future every gap has timed out.
        loop {
            match jb.poll_output(LocalInstant::from_millis(100_000)) {
                JitterOutput::Packet(p) => released.push(p.seq_ext),
                JitterOutput::Lost { count, .. } => lost += count,
                JitterOutput::Drained { .. } => break,
            }
        }
        for pair in released.windows(2) {
            prop_assert!(pair[0] < pair[1]);
        }
        // Every sequence number from the first released one is accounted for exactly once.
        let first = released.first().copied().unwrap_or(0);
        prop_assert_eq!(released.len() as i64 + lost, 300 - first);
    }
}
