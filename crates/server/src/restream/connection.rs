//! One RTSP client of the restream: requests in, responses and (over TCP) interleaved media
//! out. `rtsp://HOST:PORT/{camera}` is the camera's main stream, `…/{camera}/sub` its
//! substream. A bad request gets the right status and the reason in `X-Error`; nothing a
//! client sends can disturb another.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_media::{Codec, FeedSubscription, SourceFeed};
use lockstep_rtsp::message::{parse_frame, Frame, Request, Response};
use lockstep_rtsp::redact::redacted_url;
use lockstep_rtsp::serving::{request_path, setup_transport, SetupTransport};
use lockstep_rtsp::transport::Transport;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::credentials::{self, Verified};
use super::describe::{self, Offer, AUDIO_TRACK, VIDEO_TRACK};
use super::player::{self, PlayTrack, Route, UdpPair};
use super::Restream;

const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER";
/// Interleaved packets queued for a slow reader before it loses frames (~2 s of 4 Mbit/s).
const TCP_QUEUE: usize = 1_024;
/// A request (with its headers) longer than this is refused.
const MAX_BUFFERED: usize = 64 << 10;

/// What DESCRIBE chose: the camera, its stream, and what the SDP offered.
struct Described {
    camera: String,
    feed: Arc<SourceFeed>,
    audio: bool,
}

/// What PLAY hands the player: its tracks, and the subscription RTP-Info was read from.
type Play = ([Option<PlayTrack>; 2], FeedSubscription);

struct SetupTrack {
    transport: Transport,
    udp: Option<Arc<UdpPair>>,
    url: String,
}

struct Session {
    id: String,
    tracks: [Option<SetupTrack>; 2],
    player: Option<JoinHandle<()>>,
    /// Read the client's RTCP over UDP (its keepalive there).
    report_readers: Vec<JoinHandle<()>>,
}

impl Session {
    fn stop(&mut self) {
        if let Some(player) = self.player.take() {
            player.abort();
        }
        for reader in self.report_readers.drain(..) {
            reader.abort();
        }
    }

    fn playing_udp(&self) -> bool {
        self.player.is_some() && self.tracks.iter().flatten().any(|t| t.udp.is_some())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Connection {
    ctx: Arc<Restream>,
    out: mpsc::Sender<Vec<u8>>,
    peer: SocketAddr,
    local: SocketAddr,
    verified: Option<Verified>,
    described: Option<Described>,
    session: Option<Session>,
    /// Milliseconds since `started` when the client was last heard (requests, RTCP).
    heard_ms: Arc<AtomicU64>,
    started: Instant,
}

pub async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Arc<Restream>) {
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let (mut reader, writer) = stream.into_split();
    let (out, out_rx) = mpsc::channel(TCP_QUEUE);
    let writer_task = tokio::spawn(lockstep_rtsp::serving::write_loop(writer, out_rx));
    let timeout = ctx.session_timeout;
    let mut conn = Connection {
        ctx,
        out,
        peer,
        local,
        verified: None,
        described: None,
        session: None,
        heard_ms: Arc::new(AtomicU64::new(0)),
        started: Instant::now(),
    };
    let mut buf = Vec::with_capacity(4_096);
    'connection: loop {
        match tokio::time::timeout(timeout, reader.read_buf(&mut buf)).await {
            // Silent on the connection: a UDP client's keepalives may be its RTCP.
            Err(_) if conn.heard_within(timeout) => continue,
            Err(_) => {
                tracing::info!("restream: {peer}: no request or report for {timeout:?}: dropped");
                break;
            }
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => conn.heard(),
        }
        loop {
            match parse_frame(&buf) {
                Ok(None) if buf.len() > MAX_BUFFERED => {
                    conn.refuse_and_close("a request longer than 64 KiB").await;
                    break 'connection;
                }
                Ok(None) => break,
                Ok(Some((frame, used))) => {
                    buf.drain(..used);
                    match frame {
                        Frame::Request(request) => conn.handle(request).await,
                        // RTCP from the client over TCP: a keepalive, already counted.
                        Frame::Interleaved { .. } => {}
                        Frame::Response(_) => {}
                    }
                }
                Err(e) => {
                    // Where the next message starts is unknown: answer and hang up.
                    conn.refuse_and_close(&e.to_string()).await;
                    break 'connection;
                }
            }
        }
    }
    drop(conn);
    let _ = writer_task.await;
}

impl Connection {
    fn heard(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.heard_ms.store(ms, Ordering::Relaxed);
    }

    fn heard_within(&self, timeout: Duration) -> bool {
        let playing_udp = self.session.as_ref().is_some_and(Session::playing_udp);
        let since = self
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(self.heard_ms.load(Ordering::Relaxed)));
        playing_udp && since < timeout
    }

    async fn refuse_and_close(&self, reason: &str) {
        tracing::debug!("restream: {}: {reason}", self.peer);
        let response = Response::new(400).header("X-Error", reason);
        let _ = self.out.send(response.to_bytes(None)).await;
    }

    async fn handle(&mut self, request: Request) {
        let cseq = request.cseq();
        let (response, play) = match cseq {
            None => (
                Response::new(400).header("X-Error", "missing or malformed CSeq"),
                None,
            ),
            Some(_) => self.respond(&request).await,
        };
        tracing::debug!(
            "restream: {} {} {} -> {}",
            self.peer,
            request.method,
            shown_uri(&request.uri),
            response.status()
        );
        let _ = self.out.send(response.to_bytes(cseq)).await;
        // Media only after the PLAY response: a client reads that first.
        if let (Some((tracks, subscription)), Some(session)) = (play, &mut self.session) {
            session.player = Some(tokio::spawn(player::run(
                subscription,
                tracks,
                self.out.clone(),
            )));
        }
    }

    async fn respond(&mut self, request: &Request) -> (Response, Option<Play>) {
        if request.method == "OPTIONS" {
            return (Response::new(200).header("Public", PUBLIC), None);
        }
        if let Err(response) = lockstep_rtsp::serving::check_session(
            request,
            self.session.as_ref().map(|s| s.id.as_str()),
        ) {
            return (response, None);
        }
        let response = match request.method.as_str() {
            "DESCRIBE" => self.describe(request).await,
            "SETUP" => self.setup(request).await,
            "PLAY" => return self.play(),
            "PAUSE" => match &mut self.session {
                Some(session) => {
                    session.stop();
                    Response::new(200).header("Session", session.id.clone())
                }
                None => Response::new(455).header("X-Error", "PAUSE without a session"),
            },
            "TEARDOWN" => {
                self.session = None;
                Response::new(200)
            }
            "GET_PARAMETER" | "SET_PARAMETER" => Response::new(200),
            "ANNOUNCE" | "RECORD" => Response::new(405)
                .header("Allow", PUBLIC)
                .header("X-Error", "the restream plays; it does not take streams"),
            _ => Response::new(501).header("Public", PUBLIC),
        };
        (response, None)
    }

    /// Who asks, checked once per connection (a token's check is a database read).
    async fn allowed(&mut self, request: &Request, camera: &str) -> Result<(), Response> {
        let given = request.header("Authorization");
        let verified = match &self.verified {
            Some(v) if given == Some(v.header.as_str()) => v.clone(),
            _ => {
                let verified =
                    credentials::verify(&self.ctx.state.auth, given, self.peer.ip()).await?;
                self.verified = Some(verified.clone());
                verified
            }
        };
        if verified.may_view(camera) {
            Ok(())
        } else {
            Err(Response::new(403).header(
                "X-Error",
                format!("these credentials may not view camera {camera:?}"),
            ))
        }
    }

    async fn describe(&mut self, request: &Request) -> Response {
        let Some(path) = request_path(&request.uri) else {
            return Response::new(400).header("X-Error", "the request URI has no path");
        };
        let (name, sub) = match path.trim_matches('/').split_once('/') {
            None => (path.trim_matches('/'), false),
            Some((name, "sub")) => (name, true),
            Some(_) => {
                return Response::new(404)
                    .header("X-Error", "streams are rtsp://HOST:PORT/CAMERA[/sub]")
            }
        };
        if let Err(response) = self.allowed(request, name).await {
            return response;
        }
        let Ok(camera) = self.ctx.state.camera(name) else {
            return Response::new(404).header("X-Error", format!("no camera named {name:?}"));
        };
        let (feed, status) = if sub {
            match &camera.substream {
                Some(s) => (s.feed.clone(), s.status.clone()),
                None => {
                    return Response::new(404)
                        .header("X-Error", format!("camera {name:?} has no substream"))
                }
            }
        } else {
            (camera.feed.clone(), camera.status.clone())
        };
        let Some(video) = feed.video_codec() else {
            return Response::new(503)
                .header("Retry-After", "5")
                .header("X-Error", format!("camera {name:?} is not live yet"));
        };
        let subscription = feed.subscribe_video_only();
        let keyframe = subscription
            .cached
            .first()
            .filter(|f| f.is_keyframe())
            .map(|f| f.data.to_vec());
        drop(subscription);
        // Audio is announced only when the live path makes it (a refused codec makes none).
        let audio = camera.settings.audio && {
            let status = status.borrow();
            status.audio_codec.is_some() && status.audio_refused.is_none()
        };
        let offer = Offer {
            video: if video == Codec::H265 {
                Codec::H265
            } else {
                Codec::H264
            },
            keyframe,
            audio,
        };
        let session_id = crate::camera_http::random_u64() >> 1;
        let body = describe::sdp(&offer, name, session_id, &self.local.ip().to_string());
        let base = format!("{}/", request.uri.trim_end_matches('/'));
        self.described = Some(Described {
            camera: name.to_owned(),
            feed,
            audio,
        });
        Response::new(200)
            .header("Content-Base", base)
            .body("application/sdp", body)
    }

    async fn setup(&mut self, request: &Request) -> Response {
        let Some(described) = &self.described else {
            return Response::new(455).header("X-Error", "DESCRIBE the stream before SETUP");
        };
        let camera = described.camera.clone();
        if let Err(response) = self.allowed(request, &camera).await {
            return response;
        }
        let Some(described) = &self.described else {
            return Response::new(455).header("X-Error", "DESCRIBE the stream before SETUP");
        };
        if self.session.as_ref().is_some_and(|s| s.player.is_some()) {
            return Response::new(455).header("X-Error", "SETUP while playing");
        }
        let track = match request.uri.rsplit_once("trackID=").map(|(_, n)| n.parse()) {
            Some(Ok(VIDEO_TRACK)) => VIDEO_TRACK,
            Some(Ok(AUDIO_TRACK)) if described.audio => AUDIO_TRACK,
            _ => {
                return Response::new(404).header(
                    "X-Error",
                    format!("no track {:?} in this stream", request.uri),
                )
            }
        };
        let SetupTransport {
            chosen,
            udp,
            server_ports,
        } = match setup_transport(request, self.local.ip(), self.peer.ip()).await {
            Ok(setup) => setup,
            Err(response) => return response,
        };
        let session = self.session.get_or_insert_with(|| Session {
            id: format!("{:016X}", crate::camera_http::random_u64()),
            tracks: [None, None],
            player: None,
            report_readers: Vec::new(),
        });
        session.tracks[track] = Some(SetupTrack {
            transport: chosen,
            udp,
            url: request.uri.clone(),
        });
        Response::new(200)
            .header(
                "Transport",
                chosen.answer(server_ports, self.ctx.ssrc(track)),
            )
            .header(
                "Session",
                format!(
                    "{};timeout={}",
                    session.id,
                    self.ctx.session_timeout.as_secs()
                ),
            )
    }

    fn play(&mut self) -> (Response, Option<Play>) {
        let (Some(session), Some(described)) = (&mut self.session, &self.described) else {
            return (
                Response::new(455).header("X-Error", "PLAY before SETUP"),
                None,
            );
        };
        if session.player.is_some() {
            return (
                Response::new(200).header("Session", session.id.clone()),
                None,
            );
        }
        // The first picture a client gets is the cached keyframe of this very subscription:
        // RTP-Info names its stamp.
        let subscription = if session.tracks[AUDIO_TRACK].is_some() {
            described.feed.subscribe()
        } else {
            described.feed.subscribe_video_only()
        };
        let first_video_pts = subscription.cached.first().map(|f| f.pts);
        let mut tracks: [Option<PlayTrack>; 2] = [None, None];
        let mut rtp_info = Vec::new();
        for (index, setup) in session.tracks.iter().enumerate() {
            let Some(setup) = setup else { continue };
            let route = match (&setup.udp, setup.transport) {
                (Some(pair), _) => {
                    let reader = read_reports(pair.clone(), self.heard_ms.clone(), self.started);
                    session.report_readers.push(tokio::spawn(reader));
                    Route::Udp(pair.clone())
                }
                (
                    None,
                    Transport::Tcp {
                        rtp_channel,
                        rtcp_channel,
                    },
                ) => Route::Tcp {
                    rtp_channel,
                    rtcp_channel,
                },
                (None, Transport::Udp { .. }) => continue,
            };
            let sender = self.ctx.sender(index);
            let mut info = format!("url={};seq={}", setup.url, sender.next_seq);
            if let (VIDEO_TRACK, Some(pts)) = (index, first_video_pts) {
                info.push_str(&format!(";rtptime={}", sender.rtp_timestamp(pts)));
            }
            rtp_info.push(info);
            tracks[index] = Some(PlayTrack { route, sender });
        }
        let response = Response::new(200)
            .header("Session", session.id.clone())
            .header("Range", "npt=now-")
            .header("RTP-Info", rtp_info.join(","));
        let udp = session.tracks.iter().flatten().any(|t| t.udp.is_some());
        tracing::info!(
            "restream: {} plays {}{}",
            self.peer,
            described.camera,
            if udp { " over UDP" } else { "" }
        );
        (response, Some((tracks, subscription)))
    }
}

/// Notes the client's RTCP on a track's UDP port: what keeps a UDP session alive.
async fn read_reports(pair: Arc<UdpPair>, heard_ms: Arc<AtomicU64>, started: Instant) {
    let mut buf = vec![0u8; 2_048];
    while let Ok((_, from)) = pair.rtcp.recv_from(&mut buf).await {
        if from.ip() == pair.client_rtcp.ip() {
            heard_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }
}

/// A request URI for the log: credentials some clients leave in it replaced by `***`.
fn shown_uri(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(url) => redacted_url(&url),
        Err(_) if uri.contains('@') => "***".to_owned(),
        Err(_) => uri.to_owned(),
    }
}
