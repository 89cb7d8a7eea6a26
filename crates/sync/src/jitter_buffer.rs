//! The jitter buffer: puts one track's packets back in order, drops duplicates, and waits for a
//! missing packet only as long as the network's jitter says it might still come.
//!
//! In-order packets leave at once (the output stage holds frames until their time anyway, so
//! waiting here would only add latency). When a sequence number is missing, the packets after it
//! wait until the first of them is `target delay` past its jitter-free arrival time; then the gap
//! is declared lost. The target is the 95th percentile of relative arrival delay over 2 s (as
//! NetEq), clamped by the latency profile, whose maximum is also a hard cap on any wait.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::delay_window::DelayWindow;
use crate::skew::SkewEstimator;
use crate::time::duration_nanos;
use crate::{LatencyProfile, LocalInstant, MediaTime};

/// Relative delays kept for the percentile.
pub const DELAY_WINDOW_NANOS: i64 = 2_000_000_000;
pub const DELAY_PERCENTILE: f64 = 0.95;
/// Packets held at most, whatever the timing says.
pub const DEFAULT_MAX_PACKETS: usize = 2_048;

/// What happened to a packet handed to the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insertion {
    Buffered,
    /// Already buffered: dropped.
    Duplicate,
    /// Its place was already released or declared lost: dropped.
    Late,
}

/// A packet leaving the buffer, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedPacket<T> {
    pub seq_ext: i64,
    pub ts_ext: i64,
    pub arrival: LocalInstant,
    pub payload: T,
}

/// The buffer's outputs, polled until [`JitterOutput::Drained`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JitterOutput<T> {
    Packet(ReleasedPacket<T>),
    /// `count` packets starting at `first_seq_ext` will not come.
    Lost {
        first_seq_ext: i64,
        count: i64,
    },
    /// Nothing more now; poll again at `next_wakeup` (or when a packet arrives, if `None`).
    Drained {
        next_wakeup: Option<LocalInstant>,
    },
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub released: u64,
    pub duplicates: u64,
    pub late: u64,
    pub lost: u64,
    /// Gaps given up on because the buffer was full rather than because time ran out.
    pub overflows: u64,
}

#[derive(Debug, Clone)]
struct Buffered<T> {
    ts_ext: i64,
    arrival: LocalInstant,
    payload: T,
}

/// One track's jitter buffer.
#[derive(Debug, Clone)]
pub struct JitterBuffer<T> {
    clock_rate_hz: u32,
    profile: LatencyProfile,
    max_packets: usize,
    packets: BTreeMap<i64, Buffered<T>>,
    next_seq: Option<i64>,
    envelope: SkewEstimator,
    delays: DelayWindow,
    target_delay_nanos: i64,
    /// RFC 3550 interarrival jitter in nanoseconds, and the last transit it was computed from.
    jitter_nanos: f64,
    last_transit_nanos: Option<i64>,
    stats: JitterStats,
}

impl<T> JitterBuffer<T> {
    pub fn new(clock_rate_hz: u32, profile: LatencyProfile) -> Self {
        JitterBuffer::with_max_packets(clock_rate_hz, profile, DEFAULT_MAX_PACKETS)
    }

    pub fn with_max_packets(
        clock_rate_hz: u32,
        profile: LatencyProfile,
        max_packets: usize,
    ) -> Self {
        JitterBuffer {
            clock_rate_hz,
            profile,
            max_packets: max_packets.max(1),
            packets: BTreeMap::new(),
            next_seq: None,
            envelope: SkewEstimator::new(),
            delays: DelayWindow::new(DELAY_WINDOW_NANOS, DELAY_PERCENTILE),
            target_delay_nanos: duration_nanos(profile.min_delay()),
            jitter_nanos: 0.0,
            last_transit_nanos: None,
            stats: JitterStats::default(),
        }
    }

    /// The stream restarted: its timing says nothing about the new one. Buffered packets stay and
    /// leave in order.
    pub fn handle_discontinuity(&mut self) {
        self.envelope.reset();
        self.delays.clear();
        self.last_transit_nanos = None;
    }

    pub fn handle_packet(
        &mut self,
        now: LocalInstant,
        seq_ext: i64,
        ts_ext: i64,
        payload: T,
    ) -> Insertion {
        self.stats.received += 1;
        if self.next_seq.is_some_and(|next| seq_ext < next) {
            self.stats.late += 1;
            return Insertion::Late;
        }
        if self.packets.contains_key(&seq_ext) {
            self.stats.duplicates += 1;
            return Insertion::Duplicate;
        }
        self.observe_arrival(now, ts_ext);
        self.packets.insert(
            seq_ext,
            Buffered {
                ts_ext,
                arrival: now,
                payload,
            },
        );
        Insertion::Buffered
    }

    fn observe_arrival(&mut self, now: LocalInstant, ts_ext: i64) {
        let send_nanos = MediaTime::new(ts_ext, self.clock_rate_hz).to_nanos();
        let transit = now.as_nanos() - send_nanos;
        if let Some(last) = self.last_transit_nanos {
            let d = (transit - last).abs() as f64;
            self.jitter_nanos += (d - self.jitter_nanos) / 16.0;
        }
        self.last_transit_nanos = Some(transit);

        self.envelope.handle_packet(now, send_nanos);
        let Some(delay) = self.envelope.relative_delay_nanos(now, send_nanos) else {
            return;
        };
        if let Some(p95) = self.delays.push(now, delay.max(0)) {
            self.target_delay_nanos = p95.clamp(
                duration_nanos(self.profile.min_delay()),
                duration_nanos(self.profile.max_delay()),
            );
        }
    }

    pub fn poll_output(&mut self, now: LocalInstant) -> JitterOutput<T> {
        let Some((&head_seq, head)) = self.packets.first_key_value() else {
            return JitterOutput::Drained { next_wakeup: None };
        };
        let next = *self.next_seq.get_or_insert(head_seq);
        if head_seq > next {
            let deadline = self.gap_deadline(head.ts_ext, head.arrival);
            let overflow = self.packets.len() >= self.max_packets;
            if now < deadline && !overflow {
                return JitterOutput::Drained {
                    next_wakeup: Some(deadline),
                };
            }
            if overflow {
                self.stats.overflows += 1;
            }
            let count = head_seq - next;
            self.stats.lost += count as u64;
            self.next_seq = Some(head_seq);
            return JitterOutput::Lost {
                first_seq_ext: next,
                count,
            };
        }
        let Some((seq_ext, packet)) = self.packets.pop_first() else {
            return JitterOutput::Drained { next_wakeup: None };
        };
        self.next_seq = Some(seq_ext + 1);
        self.stats.released += 1;
        JitterOutput::Packet(ReleasedPacket {
            seq_ext,
            ts_ext: packet.ts_ext,
            arrival: packet.arrival,
            payload: packet.payload,
        })
    }

    /// When to stop waiting for the packets before one that arrived at `arrival`.
    fn gap_deadline(&self, ts_ext: i64, arrival: LocalInstant) -> LocalInstant {
        let send_nanos = MediaTime::new(ts_ext, self.clock_rate_hz).to_nanos();
        let hard_cap = arrival + self.profile.max_delay();
        match self.envelope.expected_arrival(send_nanos) {
            Some(expected) => expected.add_nanos(self.target_delay_nanos).min(hard_cap),
            None => hard_cap,
        }
    }

    /// The current adaptive target delay.
    pub fn target_delay(&self) -> Duration {
        Duration::from_nanos(self.target_delay_nanos.max(0) as u64)
    }

    /// RFC 3550 interarrival jitter.
    pub fn jitter(&self) -> Duration {
        Duration::from_nanos(self.jitter_nanos.max(0.0) as u64)
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn max_packets(&self) -> usize {
        self.max_packets
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: i64) -> LocalInstant {
        LocalInstant::from_millis(v)
    }

    fn drain(jb: &mut JitterBuffer<u32>, now: LocalInstant) -> Vec<JitterOutput<u32>> {
        let mut out = Vec::new();
        loop {
            let o = jb.poll_output(now);
            let done = matches!(o, JitterOutput::Drained { .. });
            out.push(o);
            if done {
                return out;
            }
        }
    }

    fn released(out: &[JitterOutput<u32>]) -> Vec<i64> {
        out.iter()
            .filter_map(|o| match o {
                JitterOutput::Packet(p) => Some(p.seq_ext),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn in_order_packets_leave_at_once() {
        let mut jb = JitterBuffer::new(8_000, LatencyProfile::Low);
        for i in 0..3 {
            assert_eq!(
                jb.handle_packet(ms(i * 20), i, i * 160, 0),
                Insertion::Buffered
            );
            assert_eq!(released(&drain(&mut jb, ms(i * 20))), vec![i]);
        }
    }

    #[test]
    fn reorders_and_drops_duplicates() {
        // `balanced` waits at least 40 ms for a missing packet, even on a jitter-free link.
        let mut jb = JitterBuffer::new(8_000, LatencyProfile::Balanced);
        jb.handle_packet(ms(0), 0, 0, 0);
        drain(&mut jb, ms(0));
        jb.handle_packet(ms(40), 2, 320, 0);
        assert_eq!(released(&drain(&mut jb, ms(40))), Vec::<i64>::new());
        assert_eq!(jb.handle_packet(ms(41), 2, 320, 0), Insertion::Duplicate);
        jb.handle_packet(ms(45), 1, 160, 0);
        assert_eq!(released(&drain(&mut jb, ms(45))), vec![1, 2]);
        assert_eq!(jb.handle_packet(ms(46), 1, 160, 0), Insertion::Late);
        let s = jb.stats();
        assert_eq!((s.duplicates, s.late, s.lost), (1, 1, 0));
    }

    #[test]
    fn declares_loss_when_the_wait_runs_out() {
        let mut jb = JitterBuffer::new(8_000, LatencyProfile::Balanced);
        for i in 0..50 {
            jb.handle_packet(ms(i * 20), i, i * 160, 0);
            drain(&mut jb, ms(i * 20));
        }
        // 50 is lost; 51 arrives on time.
        jb.handle_packet(ms(51 * 20), 51, 51 * 160, 0);
        let out = drain(&mut jb, ms(51 * 20));
        let JitterOutput::Drained {
            next_wakeup: Some(deadline),
        } = out[0]
        else {
            panic!("expected a wait, got {out:?}");
        };
        // The balanced profile waits at least 40 ms and at most 200 ms.
        let wait = deadline.nanos_since(ms(51 * 20));
        assert!((40_000_000..=200_000_000).contains(&wait), "{wait}");
        let out = drain(&mut jb, deadline);
        assert_eq!(
            out[0],
            JitterOutput::Lost {
                first_seq_ext: 50,
                count: 1
            }
        );
        assert_eq!(released(&out), vec![51]);
    }

    #[test]
    fn target_follows_jitter_within_the_profile() {
        let mut jb = JitterBuffer::new(8_000, LatencyProfile::Smooth);
        for i in 0..500 {
            // Every fifth packet is 60 ms late: 20 % of packets, so the 95th percentile is 60 ms.
            let jitter = if i % 5 == 0 { 60 } else { 0 };
            jb.handle_packet(ms(i * 20 + jitter), i, i * 160, 0);
            drain(&mut jb, ms(i * 20 + jitter));
        }
        let target = jb.target_delay().as_millis();
        assert!(
            (100..=110).contains(&target),
            "smooth floor is 100 ms: {target}"
        );
        let mut jb = JitterBuffer::new(8_000, LatencyProfile::Low);
        for i in 0..500 {
            let jitter = if i % 5 == 0 { 60 } else { 0 };
            jb.handle_packet(ms(i * 20 + jitter), i, i * 160, 0);
            drain(&mut jb, ms(i * 20 + jitter));
        }
        let target = jb.target_delay().as_millis();
        assert!((55..=65).contains(&target), "{target}");
    }

    #[test]
    fn never_holds_more_than_its_cap() {
        let mut jb = JitterBuffer::with_max_packets(8_000, LatencyProfile::Smooth, 3);
        jb.handle_packet(ms(0), 0, 0, 0);
        drain(&mut jb, ms(0));
        // Packet 1 never comes. `smooth` waits at least 100 ms (5 packets) for it; the cap gives
        // up at 3.
        for i in 2..10 {
            jb.handle_packet(ms(i * 20), i, i * 160, 0);
            let _ = drain(&mut jb, ms(i * 20));
            assert!(jb.len() < 3, "{} packets held", jb.len());
        }
        assert_eq!(jb.stats().overflows, 1);
    }
}
