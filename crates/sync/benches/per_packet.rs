//! The per-packet ingest path: timeline unwrap, jitter buffer, sender-report and skew clocks,
//! capture mapping and playout delay — everything `SourceSync` does for one RTP packet — and the
//! whole production `Source` (the same, then the retimer, scheduler and watchdog) with codecs
//! that cost nothing, so the figure is the sync engine's alone.
//!
//! `cargo bench -p lockstep-sync --bench per_packet`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lockstep_sync::null_codecs::FixedChunks;
use lockstep_sync::{
    LatencyProfile, LocalInstant, NtpTime, Source, SourceConfig, SourceEvent, SourceOutput,
    SourceSync, TrackKind, VideoAssemble, VideoPacket, VideoUnit,
};

/// Ten seconds of a camera: 8 kHz audio in 20 ms packets, 30 fps video in 3 packets a frame,
/// jitter up to 20 ms, a sender report per track every 5 s.
struct Packet {
    arrival: LocalInstant,
    track: usize,
    seq: u16,
    ts: u32,
}

/// (arrival, track, RTP time, NTP time) of a sender report.
type Report = (LocalInstant, usize, u32, NtpTime);

fn camera(secs: u32) -> (Vec<Packet>, Vec<Report>) {
    let mut packets = Vec::new();
    let mut reports = Vec::new();
    let jitter = |i: u32| i64::from(i.wrapping_mul(2_654_435_761) % 20_000_000);
    for i in 0..secs * 50 {
        let send = i64::from(i) * 20_000_000;
        packets.push(Packet {
            arrival: LocalInstant::from_nanos(send + 10_000_000 + jitter(i)),
            track: 0,
            seq: i as u16,
            ts: i * 160,
        });
    }
    for f in 0..secs * 30 {
        let send = i64::from(f) * 33_333_333;
        for p in 0..3 {
            packets.push(Packet {
                arrival: LocalInstant::from_nanos(send + 10_000_000 + jitter(f * 3 + p)),
                track: 1,
                seq: (f * 3 + p) as u16,
                ts: f * 3_000,
            });
        }
    }
    for r in 0..secs / 5 {
        let at = i64::from(r) * 5_000_000_000;
        let ntp = NtpTime::from_nanos_since_1900(3_900_000_000_000_000_000 + at);
        reports.push((
            LocalInstant::from_nanos(at + 10_000_000),
            0,
            r * 40_000,
            ntp,
        ));
        reports.push((
            LocalInstant::from_nanos(at + 10_000_000),
            1,
            r * 450_000,
            ntp,
        ));
    }
    packets.sort_by_key(|p| p.arrival);
    (packets, reports)
}

fn ingest(packets: &[Packet], reports: &[Report]) -> usize {
    let mut sync = SourceSync::<u32>::new(LatencyProfile::Low);
    let tracks = [
        sync.add_track(TrackKind::Audio, 8_000),
        sync.add_track(TrackKind::Video, 90_000),
    ];
    let mut reports = reports.iter().peekable();
    let mut released = 0;
    for p in packets {
        while let Some((at, track, rtp, ntp)) = reports.peek() {
            if *at > p.arrival {
                break;
            }
            let _ = sync.handle_sender_report(*at, tracks[*track], 1 + *track as u32, *rtp, *ntp);
            reports.next();
        }
        let _ = sync.handle_rtp(
            p.arrival,
            tracks[p.track],
            1 + p.track as u32,
            p.seq,
            p.ts,
            0,
        );
        loop {
            match sync.poll_output(p.arrival) {
                SourceOutput::Packet(out) => {
                    black_box(sync.output_time(out.capture));
                    released += 1;
                }
                SourceOutput::Drained { .. } => break,
                _ => {}
            }
        }
    }
    released
}

/// A frame ends at every third packet.
struct Frames(u32);
impl VideoAssemble<u32> for Frames {
    type Frame = ();
    fn push(&mut self, packet: VideoPacket<u32>) -> Option<VideoUnit<()>> {
        self.0 += 1;
        (self.0 % 3 == 0).then_some(VideoUnit {
            capture: packet.capture,
            keyframe: self.0 % 180 == 3,
            frame: (),
        })
    }
}

fn source(packets: &[Packet], reports: &[Report]) -> usize {
    let mut source = Source::new(
        SourceConfig::new(LatencyProfile::Low),
        Some(Frames(0)),
        Some((8_000, FixedChunks(160))),
    );
    let kinds = [TrackKind::Audio, TrackKind::Video];
    let mut reports = reports.iter().peekable();
    let mut outputs = 0;
    for p in packets {
        while let Some((at, track, rtp, ntp)) = reports.peek() {
            if *at > p.arrival {
                break;
            }
            let ssrc = 1 + *track as u32;
            let _ = source.handle_sender_report(*at, kinds[*track], ssrc, *rtp, *ntp);
            reports.next();
        }
        let kind = kinds[p.track];
        let _ = source.handle_rtp(p.arrival, kind, 1 + p.track as u32, p.seq, p.ts, 0);
        loop {
            match source.poll_output(p.arrival) {
                SourceEvent::Drained { .. } => break,
                event => {
                    black_box(event);
                    outputs += 1;
                }
            }
        }
    }
    outputs
}

fn per_packet(c: &mut Criterion) {
    let (packets, reports) = camera(10);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(packets.len() as u64));
    group.bench_function("source_sync_per_packet", |b| {
        b.iter(|| ingest(black_box(&packets), black_box(&reports)))
    });
    group.bench_function("source_per_packet", |b| {
        b.iter(|| source(black_box(&packets), black_box(&reports)))
    });
    group.finish();
}

criterion_group!(benches, per_packet);
criterion_main!(benches);
