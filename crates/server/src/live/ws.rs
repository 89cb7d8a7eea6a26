//! What every WebSocket endpoint shares: the heartbeat, the idle timeout, limits per IP address,
//! and closing as RFC 6455 asks.
//!
//! Closing: after the close handshake the server drops the TCP connection first, so the
//! TIME_WAIT state stays on the server (one listening port, cheap) and never piles up on the
//! client, whose ephemeral ports a reconnect storm would otherwise exhaust. A client that closes
//! gets our close frame back (tungstenite answers it) and then our FIN.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::time::Instant;

use crate::config::ServerConfig;

/// Close codes (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    /// A message we cannot accept: malformed, or of a type the endpoint does not take.
    pub const UNSUPPORTED: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
}

/// How long we wait for the peer's close frame before dropping the connection anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Unanswered pings before a peer is taken for gone.
pub const MISSED_PONGS: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsPolicy {
    pub ping_every: Duration,
    pub idle_timeout: Duration,
}

impl WsPolicy {
    pub fn from_config(server: &ServerConfig) -> Self {
        WsPolicy {
            ping_every: Duration::from_secs(server.ws_ping_secs.into()),
            idle_timeout: Duration::from_secs(server.ws_idle_timeout_secs.into()),
        }
    }
}

/// What the heartbeat wants done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    Ping,
    /// [`MISSED_PONGS`] pings went unanswered.
    Dead,
    /// Nothing but pongs for the idle timeout.
    Idle,
}

impl Beat {
    /// Does what the beat asks: a ping goes out (`None`: the session goes on), or the session
    /// ends with this close code and reason.
    pub fn act(self, out: &tokio::sync::mpsc::Sender<Message>) -> Option<(u16, String)> {
        match self {
            Beat::Ping => {
                // A full queue already keeps the peer busy; the next beat pings again.
                let _ = out.try_send(Message::Ping(Default::default()));
                None
            }
            Beat::Dead => Some((close_code::POLICY, "no pong to two pings".to_owned())),
            Beat::Idle => Some((
                close_code::POLICY,
                "idle: no message for the idle timeout".to_owned(),
            )),
        }
    }
}

/// Ping every `ping_every`; a peer is dead after [`MISSED_PONGS`] unanswered pings, idle after
/// `idle_timeout` without a message. Any frame from the peer proves it alive; only messages
/// (not pongs) count as activity.
#[derive(Debug)]
pub struct Heartbeat {
    policy: WsPolicy,
    next_ping: Instant,
    unanswered: u32,
    last_message: Instant,
}

impl Heartbeat {
    pub fn new(policy: WsPolicy, now: Instant) -> Self {
        Heartbeat {
            policy,
            next_ping: now + policy.ping_every,
            unanswered: 0,
            last_message: now,
        }
    }

    /// A pong (or any frame) came.
    pub fn heard(&mut self) {
        self.unanswered = 0;
    }

    /// A message came: the peer is alive and busy.
    pub fn message(&mut self, now: Instant) {
        self.unanswered = 0;
        self.last_message = now;
    }

    fn deadline(&self) -> Instant {
        self.next_ping
            .min(self.last_message + self.policy.idle_timeout)
    }

    /// Waits until something is due and says what.
    pub async fn next(&mut self) -> Beat {
        loop {
            tokio::time::sleep_until(self.deadline()).await;
            if let Some(beat) = self.poll(Instant::now()) {
                return beat;
            }
        }
    }

    pub fn poll(&mut self, now: Instant) -> Option<Beat> {
        if now >= self.last_message + self.policy.idle_timeout {
            return Some(Beat::Idle);
        }
        if now < self.next_ping {
            return None;
        }
        if self.unanswered >= MISSED_PONGS {
            return Some(Beat::Dead);
        }
        self.unanswered += 1;
        self.next_ping = now + self.policy.ping_every;
        Some(Beat::Ping)
    }
}

/// A close frame with a reason (cut to the 123 bytes a control frame allows).
pub fn close_message(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

/// A read from the peer: its message, or how the session ends — the peer gone (1000) or a
/// message we cannot read (1003, 1009 when too big).
pub fn received(read: Option<Result<Message, axum::Error>>) -> Result<Message, (u16, String)> {
    match read {
        None => Err((close_code::NORMAL, "closed".to_owned())),
        Some(Err(e)) => Err(read_error_code(&e)),
        Some(Ok(message)) => Ok(message),
    }
}

/// After our close frame: waits (briefly) for the peer's, so that we then drop the connection
/// and the server closes TCP first.
pub async fn await_peer_close<S>(stream: &mut S)
where
    S: futures::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    use futures::StreamExt as _;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// A connection's writing half on a task of its own, fed by a bounded queue: a peer that does
/// not read its socket holds up nothing but its own queue. The task ends after sending a close
/// frame (or when the queue's senders are gone).
pub fn spawn_writer(
    mut sink: futures::stream::SplitSink<axum::extract::ws::WebSocket, Message>,
    queue: usize,
) -> (
    tokio::sync::mpsc::Sender<Message>,
    tokio::task::JoinHandle<()>,
) {
    use futures::SinkExt as _;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(queue);
    let task = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    (tx, task)
}

/// The close code for a failed read: a message beyond the size limit is 1009.
pub fn read_error_code(error: &axum::Error) -> (u16, String) {
    let too_big = std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    if too_big {
        (close_code::TOO_BIG, format!("message too big: {error}"))
    } else {
        (
            close_code::UNSUPPORTED,
            format!("unreadable message: {error}"),
        )
    }
}

/// An address already holds its share of connections.
#[derive(Debug)]
pub struct TooManyConnections {
    ip: IpAddr,
    max: u32,
}

impl IntoResponse for TooManyConnections {
    fn into_response(self) -> Response {
        let message = format!(
            "{} already holds {} WebSocket connections (server.max_connections_per_ip)",
            self.ip, self.max
        );
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "5")],
            Json(json!({ "error": message })),
        )
            .into_response()
    }
}

/// WebSocket connections per IP address: a flood from one address cannot starve the others.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_per_ip: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    pub fn new(max_per_ip: u32) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_per_ip,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A permit for one more connection from `ip`, or the refusal (a 429 with `Retry-After`).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, TooManyConnections> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(TooManyConnections {
                ip,
                max: self.max_per_ip,
            });
        }
        *n += 1;
        Ok(Permit {
            limits: self.clone(),
            ip,
        })
    }

    pub fn open(&self) -> u32 {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: WsPolicy = WsPolicy {
        ping_every: Duration::from_secs(15),
        idle_timeout: Duration::from_secs(300),
    };

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_dropped_after_two_unanswered_pings() {
        let start = Instant::now();
        let mut heartbeat = Heartbeat::new(POLICY, start);
        let mut seen = Vec::new();
        loop {
            let beat = heartbeat.next().await;
            seen.push((beat, start.elapsed().as_secs()));
            if beat != Beat::Ping {
                break;
            }
        }
        assert_eq!(seen, [(Beat::Ping, 15), (Beat::Ping, 30), (Beat::Dead, 45)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_answering_pings_stays_until_idle() {
        let start = Instant::now();
        let mut heartbeat = Heartbeat::new(POLICY, start);
        let mut pings = 0;
        let beat = loop {
            match heartbeat.next().await {
                Beat::Ping => {
                    pings += 1;
                    // The pong comes 100 ms later.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    heartbeat.heard();
                }
                other => break other,
            }
        };
        assert_eq!(beat, Beat::Idle);
        assert_eq!(start.elapsed().as_secs(), 300);
        assert_eq!(pings, 19);
    }

    #[tokio::test(start_paused = true)]
    async fn messages_keep_a_peer_from_idling() {
        let start = Instant::now();
        let mut heartbeat = Heartbeat::new(POLICY, start);
        // Pongs at once and a message every 100 s for 1000 s: never idle, never dead.
        for _ in 0..10 {
            let sleep = tokio::time::sleep(Duration::from_secs(100));
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    beat = heartbeat.next() => {
                        assert_eq!(beat, Beat::Ping);
                        heartbeat.heard();
                    }
                }
            }
            heartbeat.message(Instant::now());
        }
        assert_eq!(start.elapsed().as_secs(), 1000);
        assert_eq!(heartbeat.poll(Instant::now()), None);
    }

    #[test]
    fn limits_count_per_address_and_free_on_drop() {
        let limits = ConnectionLimits::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        let refused = limits.admit(a).unwrap_err().into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "5");
        let _other = limits.admit(b).expect("another address is not starved");
        drop(first);
        let _again = limits
            .admit(a)
            .expect("a closed connection frees its place");
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let Message::Close(Some(frame)) = close_message(1003, &long) else {
            panic!("not a close frame");
        };
        assert!(frame.reason.len() <= 123);
        assert_eq!(frame.code, 1003);
    }
}
