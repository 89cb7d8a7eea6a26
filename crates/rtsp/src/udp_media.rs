//! RTP and RTCP over UDP for a camera session (RFC 2326 §12.39 `client_port`): two sockets
//! per track on the interface that reaches the camera, packets taken from the camera's address
//! only, in the order they arrive — loss and reordering reach the sync core's jitter buffer,
//! which exists to handle them — and RTCP receiver reports back to the camera.

use std::net::{IpAddr, SocketAddr};
use std::task::Poll;
use std::time::{Duration, Instant};

use lockstep_sync::TrackKind;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

use crate::reception::ReceptionStats;
use crate::rtp::{parse_rtp, parse_sender_report, receiver_report, rtp_packet};

/// Receiver reports go out this often (RFC 3550's minimum interval).
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Asked of the kernel per socket: a keyframe at 8 Mbit/s is a burst of hundreds of packets.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;
/// Larger than any UDP payload.
const MAX_DATAGRAM: usize = 65_536;

/// Binds RTP on an even port and RTCP on the next one (what RFC 3550 §11 asks and cameras
/// expect), on `ip`.
pub async fn bind_rtp_pair(ip: IpAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let mut last_error = None;
    for _ in 0..64 {
        let rtp = UdpSocket::bind((ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        match UdpSocket::bind((ip, port + 1)).await {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no free even/odd UDP port pair")))
}

/// One track's sockets, before SETUP tells where the camera sends from.
#[derive(Debug)]
pub struct UdpTrack {
    kind: TrackKind,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// Where receiver reports go: the camera's RTCP port from SETUP's `server_port`.
    camera_rtcp: Option<SocketAddr>,
    stats: ReceptionStats,
}

impl UdpTrack {
    /// Binds the pair for a track whose RTP clock runs at `clock_rate_hz`.
    pub async fn bind(
        kind: TrackKind,
        local_ip: IpAddr,
        clock_rate_hz: u32,
    ) -> std::io::Result<UdpTrack> {
        let (rtp, rtcp) = bind_rtp_pair(local_ip).await?;
        for socket in [&rtp, &rtcp] {
            // The kernel caps it at its own maximum; a smaller buffer still works.
            let _ = socket2::SockRef::from(socket).set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
        }
        Ok(UdpTrack {
            kind,
            rtp,
            rtcp,
            camera_rtcp: None,
            stats: ReceptionStats::new(clock_rate_hz),
        })
    }

    /// The local RTP and RTCP ports, for SETUP's `client_port`.
    pub fn ports(&self) -> (u16, u16) {
        let port = |s: &UdpSocket| s.local_addr().map_or(0, |a| a.port());
        (port(&self.rtp), port(&self.rtcp))
    }
}

/// A datagram from the camera.
#[derive(Debug)]
pub struct Datagram {
    pub kind: TrackKind,
    pub rtcp: bool,
    pub data: Vec<u8>,
    pub arrived: Instant,
}

/// The UDP side of a playing session.
#[derive(Debug)]
pub struct UdpMedia {
    tracks: Vec<UdpTrack>,
    camera_ip: IpAddr,
    our_ssrc: u32,
    next_report: Instant,
    /// Which socket is polled first next time, so one busy track cannot starve another.
    first_polled: usize,
    scratch: Vec<u8>,
    /// Datagrams read before the session was handed over (the first packet `auto` waits for).
    early: std::collections::VecDeque<Datagram>,
}

impl UdpMedia {
    /// `tracks` with the camera's RTCP ports (`server_port` from SETUP; none: reports go to the
    /// port its RTCP comes from).
    pub fn new(mut tracks: Vec<(UdpTrack, Option<u16>)>, camera_ip: IpAddr, our_ssrc: u32) -> Self {
        UdpMedia {
            tracks: tracks
                .drain(..)
                .map(|(mut track, port)| {
                    track.camera_rtcp = port.map(|p| SocketAddr::new(camera_ip, p));
                    track
                })
                .collect(),
            camera_ip,
            our_ssrc,
            next_report: Instant::now() + REPORT_INTERVAL,
            first_polled: 0,
            scratch: vec![0; MAX_DATAGRAM],
            early: std::collections::VecDeque::new(),
        }
    }

    /// Sends one small RTP packet and an empty receiver report to each of the camera's ports,
    /// as ffmpeg does: a stateful firewall on this host then lets the camera's packets in.
    pub async fn open_pinholes(&self, camera_rtp_ports: &[Option<u16>]) {
        for (track, port) in self.tracks.iter().zip(camera_rtp_ports) {
            if let Some(port) = port {
                let punch = rtp_packet(0, false, 0, 0, self.our_ssrc, &[]);
                let _ = track
                    .rtp
                    .send_to(&punch, SocketAddr::new(self.camera_ip, *port))
                    .await;
            }
            if let Some(to) = track.camera_rtcp {
                let _ = track
                    .rtcp
                    .send_to(&receiver_report(self.our_ssrc, &[], "lockstep"), to)
                    .await;
            }
        }
    }

    /// Waits up to `wait` for the first RTP packet of the first track, and keeps it (and what
    /// came before it) for [`UdpMedia::recv`]. False: nothing came — UDP does not reach us.
    pub async fn first_packet_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.read()).await {
                Ok(Ok(datagram)) => {
                    let first = !datagram.rtcp && datagram.kind == self.tracks[0].kind;
                    self.early.push_back(datagram);
                    if first {
                        return true;
                    }
                }
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// The next datagram from the camera, when it arrived. Sends receiver reports when due.
    /// Cancel-safe: a datagram is taken off its socket only in the poll that returns it.
    pub async fn recv(&mut self) -> std::io::Result<Datagram> {
        if let Some(datagram) = self.early.pop_front() {
            return Ok(datagram);
        }
        let now = Instant::now();
        if now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            self.send_reports(now);
        }
        self.read().await
    }

    async fn read(&mut self) -> std::io::Result<Datagram> {
        loop {
            let (index, rtcp, from, len) = self.poll_sockets().await?;
            let arrived = Instant::now();
            // Only the camera's packets: anything else on these ports is someone else's.
            if from.ip() != self.camera_ip {
                continue;
            }
            let data = self.scratch[..len].to_vec();
            let track = &mut self.tracks[index];
            if rtcp {
                if track.camera_rtcp.is_none() {
                    track.camera_rtcp = Some(from);
                }
                if let Some(sr) = parse_sender_report(&data) {
                    track.stats.on_sender_report(sr.ntp.as_bits(), arrived);
                }
            } else if let Ok(header) = parse_rtp(&data) {
                track
                    .stats
                    .on_rtp(header.ssrc, header.seq, header.timestamp, arrived);
            }
            return Ok(Datagram {
                kind: track.kind,
                rtcp,
                data,
                arrived,
            });
        }
    }

    /// Polls every socket once per wakeup, starting at a different one each time.
    async fn poll_sockets(&mut self) -> std::io::Result<(usize, bool, SocketAddr, usize)> {
        let sockets = self.tracks.len() * 2;
        self.first_polled = (self.first_polled + 1) % sockets;
        let first = self.first_polled;
        let (tracks, scratch) = (&self.tracks, &mut self.scratch);
        std::future::poll_fn(|cx| {
            for n in 0..sockets {
                let i = (first + n) % sockets;
                let track = &tracks[i / 2];
                let rtcp = i % 2 == 1;
                let socket = if rtcp { &track.rtcp } else { &track.rtp };
                let mut buf = ReadBuf::new(scratch);
                match socket.poll_recv_from(cx, &mut buf) {
                    Poll::Ready(Ok(from)) => {
                        return Poll::Ready(Ok((i / 2, rtcp, from, buf.filled().len())))
                    }
                    // An ICMP error from an earlier send (Windows reports it on the next
                    // receive): not the camera's stream ending.
                    Poll::Ready(Err(e)) if is_transient(&e) => cx.waker().wake_by_ref(),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }

    /// One receiver report per track, from its RTCP socket to the camera's.
    fn send_reports(&mut self, now: Instant) {
        for track in &mut self.tracks {
            let (Some(to), Some(block)) = (track.camera_rtcp, track.stats.report_block(now)) else {
                continue;
            };
            let report = receiver_report(self.our_ssrc, &[block], "lockstep");
            // UDP sends do not block; a full buffer loses one report, as the network might.
            let _ = track.rtcp.try_send_to(&report, to);
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused
    )
}
