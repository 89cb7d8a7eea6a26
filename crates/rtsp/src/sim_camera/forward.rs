//! Sends the live stream to one playing client, through the impaired network in front of the
//! camera: on UDP packets may be delayed, lost, reordered or duplicated; on TCP (a byte stream)
//! they are never lost, but may be delayed and, with `--reorder`, sent out of sequence order —
//! as a packetizer that interleaves tracks badly or a relay in between does.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::config::Impairments;
use super::live::Packet;
use super::Rng;
use crate::message::interleave;
pub use crate::serving::{Route, UdpPair};

/// A reordered packet is held back by this much on top of its jitter.
const REORDER_HOLD: Duration = Duration::from_millis(20);

struct Pending {
    route: Route,
    rtcp: bool,
    data: Arc<Packet>,
}

/// Forwards until the live stream ends or the task is aborted (PAUSE, TEARDOWN, disconnect).
pub async fn run(
    mut rx: broadcast::Receiver<Arc<Packet>>,
    first_reports: Vec<Arc<Packet>>,
    routes: Vec<Option<Route>>,
    impairments: Impairments,
    mut rng: Rng,
    tcp_out: mpsc::Sender<Vec<u8>>,
) {
    // The latest sender reports first, so the client can sync at once.
    for report in first_reports {
        if let Some(Some(route)) = routes.get(report.track) {
            let pending = Pending {
                route: route.clone(),
                rtcp: true,
                data: report,
            };
            if !send(&pending, &tcp_out).await {
                return;
            }
        }
    }
    let mut heap: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut pending: std::collections::HashMap<u64, Pending> = std::collections::HashMap::new();
    let mut order = 0u64;
    let mut last_tcp_due = Instant::now();
    loop {
        let next_due = heap.peek().map(|Reverse((due, _))| *due);
        let received = tokio::select! {
            r = rx.recv() => Some(r),
            () = sleep_until_opt(next_due) => None,
        };
        match received {
            Some(Ok(packet)) => {
                let Some(Some(route)) = routes.get(packet.track) else {
                    continue;
                };
                let now = Instant::now();
                let udp = matches!(route, Route::Udp(_));
                if udp && rng.chance(impairments.loss) {
                    continue;
                }
                let copies = if udp && rng.chance(impairments.duplicate) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let jitter = impairments.jitter.mul_f64(rng.unit());
                    let mut due = now + jitter;
                    let reordered = rng.chance(impairments.reorder);
                    if udp && reordered {
                        due += REORDER_HOLD + impairments.jitter;
                    } else if reordered {
                        // Held back behind the packets that follow it.
                        due = due.max(last_tcp_due) + REORDER_HOLD;
                    } else if !udp {
                        // Otherwise a byte stream keeps its order.
                        due = due.max(last_tcp_due);
                        last_tcp_due = due;
                    }
                    heap.push(Reverse((due, order)));
                    pending.insert(
                        order,
                        Pending {
                            route: route.clone(),
                            rtcp: packet.rtcp,
                            data: Arc::clone(&packet),
                        },
                    );
                    order += 1;
                }
            }
            // A slow client missed packets: like a camera, carry on with the newest.
            Some(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Some(Err(broadcast::error::RecvError::Closed)) => return,
            None => {}
        }
        let now = Instant::now();
        while let Some(Reverse((due, id))) = heap.peek().copied() {
            if due > now {
                break;
            }
            heap.pop();
            if let Some(p) = pending.remove(&id) {
                if !send(&p, &tcp_out).await {
                    return;
                }
            }
        }
    }
}

async fn sleep_until_opt(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Sends one packet; false when the client is gone.
async fn send(p: &Pending, tcp_out: &mpsc::Sender<Vec<u8>>) -> bool {
    match &p.route {
        Route::Tcp {
            rtp_channel,
            rtcp_channel,
        } => {
            let channel = if p.rtcp { *rtcp_channel } else { *rtp_channel };
            match tcp_out.try_send(interleave(channel, &p.data.data)) {
                Ok(()) => true,
                // The client reads too slowly: drop, as a camera's send buffer would.
                Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        }
        Route::Udp(pair) => {
            let result = if p.rtcp {
                pair.rtcp.send_to(&p.data.data, pair.client_rtcp).await
            } else {
                pair.rtp.send_to(&p.data.data, pair.client_rtp).await
            };
            // ICMP port unreachable and the like: the client may come back; keep going.
            let _ = result;
            true
        }
    }
}
