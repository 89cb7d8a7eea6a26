//! One client connection: RTSP requests in, responses and (when playing over TCP) interleaved
//! media out. A bad client gets the right status and is never able to disturb another.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};

use lockstep_media::g711::G711Law;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::forward::{self, Route, UdpPair};
use super::{sdp, Context, Rng, BACKCHANNEL_REQUIRE, CAMERA_PATH};
use crate::auth;
use crate::message::{parse_frame, Frame, Request, Response};
use crate::rtp::parse_rtp;
use crate::serving::{request_path, setup_transport, SetupTransport};
use crate::transport::Transport;

const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
/// Interleaved frames queued for a slow reader before packets are dropped.
const TCP_QUEUE: usize = 2_048;

struct SetupTrack {
    transport: Transport,
    udp: Option<Arc<UdpPair>>,
}

struct Session {
    id: String,
    tracks: BTreeMap<usize, SetupTrack>,
    forwarder: Option<JoinHandle<()>>,
    backchannel_udp: Option<JoinHandle<()>>,
    /// Read the client's RTCP over UDP, one per media track.
    report_readers: Vec<JoinHandle<()>>,
}

impl Session {
    fn stop_media(&mut self) {
        if let Some(task) = self.forwarder.take() {
            task.abort();
        }
        if let Some(task) = self.backchannel_udp.take() {
            task.abort();
        }
        for task in self.report_readers.drain(..) {
            task.abort();
        }
    }

    fn playing(&self) -> bool {
        self.forwarder.is_some()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_media();
    }
}

struct Connection {
    ctx: Arc<Context>,
    out: mpsc::Sender<Vec<u8>>,
    peer: SocketAddr,
    local: SocketAddr,
    nonce: String,
    rng: Rng,
    session: Option<Session>,
    /// The client asked for the ONVIF backchannel in DESCRIBE.
    backchannel_requested: bool,
}

pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Arc<Context>, seed: u64) {
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let (mut reader, writer) = stream.into_split();
    let (out, out_rx) = mpsc::channel(TCP_QUEUE);
    let writer_task = tokio::spawn(crate::serving::write_loop(writer, out_rx));
    let mut rng = Rng::new(seed);
    let nonce = format!("{:016x}", rng.next_u64());
    let mut conn = Connection {
        ctx: Arc::clone(&ctx),
        out,
        peer,
        local,
        nonce,
        rng,
        session: None,
        backchannel_requested: false,
    };
    let mut drops = ctx.drops.clone();
    // Only drops after this connection began concern it.
    drops.borrow_and_update();
    let timeout = ctx.cfg.session_timeout;
    let mut buf = Vec::with_capacity(4_096);
    'connection: loop {
        let read = tokio::select! {
            r = tokio::time::timeout(timeout, reader.read_buf(&mut buf)) => r,
            _ = drops.changed() => break,
        };
        match read {
            // Silent too long: unless it is playing over UDP (its keepalives are RTCP there).
            Err(_) if conn.playing_udp() => continue,
            Err(_) => {
                tracing::debug!("sim-camera: {peer}: idle timeout");
                break;
            }
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
        }
        loop {
            match parse_frame(&buf) {
                Ok(None) => break,
                Ok(Some((frame, used))) => {
                    buf.drain(..used);
                    match frame {
                        Frame::Request(request) => conn.handle(request).await,
                        Frame::Interleaved { channel, payload } => {
                            conn.interleaved(channel, &payload)
                        }
                        // A camera is not asked anything by its clients' answers.
                        Frame::Response(reply) => {
                            tracing::debug!(
                                "sim-camera: {peer}: ignored a response {}",
                                reply.status
                            )
                        }
                    }
                }
                Err(e) => {
                    // Where the next message starts is unknown: answer and hang up.
                    tracing::debug!("sim-camera: {peer}: {e}");
                    let response = Response::new(400).header("X-Error", e.to_string());
                    let _ = conn.out.send(response.to_bytes(None)).await;
                    break 'connection;
                }
            }
        }
    }
    drop(conn);
    let _ = writer_task.await;
}

impl Connection {
    fn playing_udp(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.playing() && s.tracks.values().any(|t| t.udp.is_some()))
    }

    fn backchannel_track(&self) -> usize {
        self.ctx.live.tracks.len()
    }

    async fn handle(&mut self, request: Request) {
        let cseq = request.cseq();
        let response = match cseq {
            None => Response::new(400).header("X-Error", "missing or malformed CSeq"),
            Some(_) => self.respond(&request).await,
        };
        tracing::debug!(
            "sim-camera: {} {} {} -> {}",
            self.peer,
            request.method,
            request.uri,
            response.status()
        );
        let _ = self.out.send(response.to_bytes(cseq)).await;
    }

    async fn respond(&mut self, request: &Request) -> Response {
        if request.method != "OPTIONS" {
            if let Some(credentials) = &self.ctx.cfg.credentials {
                if !auth::verify(
                    credentials,
                    request.header("Authorization"),
                    &request.method,
                    &self.nonce,
                ) {
                    let [digest, basic] = auth::challenges(&self.nonce);
                    return Response::new(401)
                        .header("WWW-Authenticate", digest)
                        .header("WWW-Authenticate", basic);
                }
            }
        }
        if let Err(response) =
            crate::serving::check_session(request, self.session.as_ref().map(|s| s.id.as_str()))
        {
            return response;
        }
        match request.method.as_str() {
            "OPTIONS" => Response::new(200).header("Public", PUBLIC),
            "DESCRIBE" => self.describe(request),
            "SETUP" => self.setup(request).await,
            "PLAY" => self.play().await,
            "PAUSE" => self.pause(),
            "TEARDOWN" => {
                self.session = None;
                Response::new(200)
            }
            "GET_PARAMETER" | "SET_PARAMETER" => Response::new(200),
            "ANNOUNCE" | "RECORD" | "REDIRECT" => Response::new(405).header("Allow", PUBLIC),
            _ => Response::new(501).header("Public", PUBLIC),
        }
    }

    fn wants_backchannel(&self, request: &Request) -> bool {
        request.header("Require").is_some_and(|r| {
            r.split(',')
                .any(|tag| tag.trim().eq_ignore_ascii_case(BACKCHANNEL_REQUIRE))
        })
    }

    fn describe(&mut self, request: &Request) -> Response {
        let path = request_path(&request.uri)
            .unwrap_or_default()
            .trim_end_matches('/');
        if path != CAMERA_PATH {
            return Response::new(404).header("X-Error", format!("no stream at {path:?}"));
        }
        let backchannel = self.wants_backchannel(request);
        if backchannel && !self.ctx.cfg.backchannel {
            return Response::new(551).header("Unsupported", BACKCHANNEL_REQUIRE);
        }
        self.backchannel_requested = backchannel;
        let host = self.local.ip().to_string();
        let body = sdp::describe(
            &self.ctx.live.tracks,
            backchannel,
            self.rng.next_u64() >> 1,
            &host,
        );
        let base = format!("rtsp://{}{CAMERA_PATH}/", self.local);
        Response::new(200)
            .header("Content-Base", base)
            .body("application/sdp", body)
    }

    /// The track a SETUP names (`…/cam/trackID=N`).
    fn setup_track(&self, uri: &str) -> Option<usize> {
        let path = request_path(uri)?;
        let rest = path.strip_prefix(CAMERA_PATH)?.strip_prefix('/')?;
        let index: usize = rest.strip_prefix("trackID=")?.parse().ok()?;
        let available = self.ctx.live.tracks.len()
            + usize::from(self.ctx.cfg.backchannel && self.backchannel_requested);
        (index < available).then_some(index)
    }

    async fn setup(&mut self, request: &Request) -> Response {
        if self.session.as_ref().is_some_and(Session::playing) {
            return Response::new(455).header("X-Error", "SETUP while playing");
        }
        let Some(track) = self.setup_track(&request.uri) else {
            return Response::new(404)
                .header("X-Error", format!("unknown track {:?}", request.uri));
        };
        let SetupTransport {
            chosen,
            udp,
            server_ports,
        } = match setup_transport(request, self.local.ip(), self.peer.ip()).await {
            Ok(setup) => setup,
            Err(response) => return response,
        };
        let ssrc = if track < self.ctx.live.tracks.len() {
            self.ctx.live.ssrc(track)
        } else {
            0
        };
        let id = match &mut self.session {
            Some(s) => {
                s.tracks.insert(
                    track,
                    SetupTrack {
                        transport: chosen,
                        udp,
                    },
                );
                s.id.clone()
            }
            None => {
                let id = format!("{:016X}", self.rng.next_u64());
                let mut tracks = BTreeMap::new();
                tracks.insert(
                    track,
                    SetupTrack {
                        transport: chosen,
                        udp,
                    },
                );
                self.session = Some(Session {
                    id: id.clone(),
                    tracks,
                    forwarder: None,
                    backchannel_udp: None,
                    report_readers: Vec::new(),
                });
                id
            }
        };
        Response::new(200)
            .header("Transport", chosen.answer(server_ports, ssrc))
            .header(
                "Session",
                format!("{id};timeout={}", self.ctx.cfg.session_timeout.as_secs()),
            )
    }

    async fn play(&mut self) -> Response {
        let Some(session) = &mut self.session else {
            return Response::new(455).header("X-Error", "PLAY before SETUP");
        };
        if session.playing() {
            return Response::new(200).header("Session", session.id.clone());
        }
        let subscription = self.ctx.live.subscribe();
        let starts = &subscription.starts;
        let media_tracks = self.ctx.live.tracks.len();
        let mut routes = vec![None; media_tracks];
        let mut rtp_info = Vec::new();
        let base = format!("rtsp://{}{CAMERA_PATH}", self.local);
        for (&track, setup) in &session.tracks {
            if track >= media_tracks {
                continue;
            }
            routes[track] = Some(match (setup.transport, &setup.udp) {
                (_, Some(pair)) => {
                    let live = Arc::clone(&self.ctx.live);
                    let reader = read_receiver_reports(Arc::clone(pair), live);
                    session.report_readers.push(tokio::spawn(reader));
                    Route::Udp(Arc::clone(pair))
                }
                (
                    Transport::Tcp {
                        rtp_channel,
                        rtcp_channel,
                    },
                    None,
                ) => Route::Tcp {
                    rtp_channel,
                    rtcp_channel,
                },
                (Transport::Udp { .. }, None) => continue,
            });
            let start = starts[track];
            rtp_info.push(format!(
                "url={base}/trackID={track};seq={};rtptime={}",
                start.seq, start.rtptime
            ));
        }
        if let Some(pair) = session
            .tracks
            .get(&media_tracks)
            .and_then(|t| t.udp.clone())
        {
            let ctx = Arc::clone(&self.ctx);
            session.backchannel_udp = Some(tokio::spawn(async move {
                let mut buf = vec![0u8; 2_048];
                while let Ok((n, _)) = pair.rtp.recv_from(&mut buf).await {
                    play_backchannel(&ctx, &buf[..n]);
                }
            }));
        }
        let rng = Rng::new(self.rng.next_u64());
        session.forwarder = Some(tokio::spawn(forward::run(
            subscription.rx,
            subscription.reports,
            routes,
            self.ctx.cfg.impairments,
            rng,
            self.out.clone(),
        )));
        let mut response = Response::new(200)
            .header("Session", session.id.clone())
            .header("Range", "npt=now-");
        if !rtp_info.is_empty() {
            response = response.header("RTP-Info", rtp_info.join(","));
        }
        response
    }

    fn pause(&mut self) -> Response {
        match &mut self.session {
            Some(session) => {
                session.stop_media();
                Response::new(200).header("Session", session.id.clone())
            }
            None => Response::new(455).header("X-Error", "PAUSE without a session"),
        }
    }

    /// Media from the client over the RTSP connection: backchannel RTP (after PLAY) or RTCP.
    fn interleaved(&mut self, channel: u8, payload: &[u8]) {
        let backchannel = self.backchannel_track();
        let Some(session) = &self.session else {
            return;
        };
        if !session.playing() {
            return;
        }
        let is_backchannel = session.tracks.get(&backchannel).is_some_and(
            |t| matches!(t.transport, Transport::Tcp { rtp_channel, .. } if rtp_channel == channel),
        );
        if is_backchannel {
            play_backchannel(&self.ctx, payload);
        }
    }
}

/// Decodes one backchannel RTP packet (PCMU) and plays it on the speaker.
fn play_backchannel(ctx: &Context, packet: &[u8]) {
    let Ok(header) = parse_rtp(packet) else {
        return;
    };
    let law = match header.payload_type {
        0 => G711Law::MuLaw,
        8 => G711Law::ALaw,
        _ => return,
    };
    let mut samples = Vec::with_capacity(header.payload_end - header.payload_offset);
    law.decode(
        &packet[header.payload_offset..header.payload_end],
        &mut samples,
    );
    let now = ctx.live.now_secs();
    ctx.live
        .speaker
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .play_rtp(now, header.timestamp, header.marker, &samples);
}

/// Keeps the receiver reports a client sends to a track's RTCP port (the latest 1 000).
async fn read_receiver_reports(pair: Arc<UdpPair>, live: Arc<super::live::Live>) {
    let mut buf = vec![0u8; 2_048];
    while let Ok((n, _)) = pair.rtcp.recv_from(&mut buf).await {
        let blocks = crate::rtp::parse_receiver_reports(&buf[..n]);
        let mut reports = live
            .receiver_reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for block in blocks {
            if reports.len() == 1_000 {
                reports.pop_front();
            }
            reports.push_back(block);
        }
    }
}
