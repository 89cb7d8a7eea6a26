//! A live WHEP stream (`http://…/api/whep/NAME`), received by a str0m peer as a browser would:
//! each track's RTP time is mapped to the sender's wallclock through the sender reports it gets,
//! which is exactly what a browser's lip sync relies on. So the figure is the offset a browser
//! that honours sender reports would play, at the timestamp level.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use lockstep_media::beep_flash::PictureObservation;
use lockstep_media::PatternReader;
use lockstep_opus::OpusDecoder;
use lockstep_sync::{NtpTime, SenderReportClock, TimestampUnwrapper};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, RtcConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::rtsp::{finish, Timed};
use super::Observations;

const AUDIO_RATE: u32 = 48_000;

fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub async fn observe(endpoint: &str, duration_secs: f64) -> anyhow::Result<Observations> {
    let server = http_host(endpoint)?;
    let socket = UdpSocket::bind(SocketAddr::new(
        if server.ip().is_loopback() {
            [127, 0, 0, 1].into()
        } else {
            [0, 0, 0, 0].into()
        },
        0,
    ))
    .await?;
    let local = socket.local_addr()?;
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut api = rtc.sdp_api();
    let video_mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let audio_mid = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().context("cannot make an SDP offer")?;
    let answer = post_offer(endpoint, &offer.to_sdp_string()).await?;
    let answer = SdpAnswer::from_sdp_string(&answer)
        .with_context(|| format!("{endpoint}: the answer is not valid SDP"))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .with_context(|| format!("{endpoint}: the answer does not fit the offer"))?;

    let mut reader = PatternReader::new(AUDIO_RATE)?;
    let mut opus = OpusDecoder::new(AUDIO_RATE, 1)?;
    let mut reports = [
        SenderReportClock::new(90_000),
        SenderReportClock::new(AUDIO_RATE),
    ];
    let mut unwrap = [TimestampUnwrapper::default(), TimestampUnwrapper::default()];
    let track = |mid: Mid| -> Option<usize> {
        if mid == video_mid {
            Some(0)
        } else if mid == audio_mid {
            Some(1)
        } else {
            None
        }
    };
    let mut pictures: Vec<Timed<PictureObservation>> = Vec::new();
    let mut chunks: Vec<Timed<Vec<f32>>> = Vec::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(duration_secs);
    let mut buf = vec![0u8; 2048];
    let mut connected = false;
    loop {
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Timeout(at) => break at,
                Output::Transmit(t) => {
                    socket.send_to(&t.contents, t.destination).await?;
                }
                Output::Event(event) => match event {
                    Event::Connected => connected = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        bail!("{endpoint}: the WebRTC connection dropped")
                    }
                    Event::MediaData(data) => {
                        let Some(t) = track(data.mid) else { continue };
                        let ts_ext = unwrap[t].unwrap(data.time.numer() as u32);
                        let arrival = unix_micros(SystemTime::now());
                        let elapsed_secs = data.network_time.duration_since(started).as_secs_f64();
                        if t == 0 {
                            if let Some(picture) = reader.observe(&data.data) {
                                pictures.push(Timed {
                                    ts_ext,
                                    elapsed_secs,
                                    arrival_unix_micros: arrival,
                                    item: picture,
                                });
                            }
                        } else if let Ok(pcm) = opus.decode(Some(&data.data)) {
                            chunks.push(Timed {
                                ts_ext,
                                elapsed_secs,
                                arrival_unix_micros: arrival,
                                item: pcm.iter().map(|&s| f32::from(s) / 32_768.0).collect(),
                            });
                        }
                    }
                    Event::SenderFeedback(feedback) => {
                        let Some(t) = track(feedback.mid) else {
                            continue;
                        };
                        let info = feedback.sender_info;
                        let ts_ext = unwrap[t].peek(info.rtp_time.numer() as u32);
                        let ntp = NtpTime::from_unix_nanos(
                            info.ntp_time
                                .duration_since(UNIX_EPOCH)
                                .map_or(0, |d| d.as_nanos() as i64),
                        );
                        let _ = reports[t].handle_sender_report(ts_ext, ntp);
                    }
                    _ => {}
                },
            }
        };
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if !connected && now.duration_since(started) > Duration::from_secs(10) {
            bail!("{endpoint}: no WebRTC connection after 10 s (is UDP to the server blocked?)");
        }
        let wait = timeout.min(deadline).saturating_duration_since(now);
        let input = match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, source))) => Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents: buf[..n].try_into()?,
                },
            ),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input)?;
    }
    rtc.disconnect();
    let mut observations = finish(pictures, chunks, &reports, AUDIO_RATE);
    if observations.timing != "sender reports" {
        bail!("{endpoint}: no sender reports for both tracks in {duration_secs} s");
    }
    observations.timing = "WebRTC sender reports";
    Ok(observations)
}

/// `http://host:port/…` → the server's address.
fn http_host(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let url = url::Url::parse(endpoint).with_context(|| format!("{endpoint}: not a URL"))?;
    if url.scheme() != "http" {
        bail!("{endpoint}: measure speaks plain http:// to the WHEP endpoint");
    }
    url.socket_addrs(|| Some(80))?
        .into_iter()
        .next()
        .with_context(|| format!("{endpoint}: cannot resolve the host"))
}

/// WHEP step one: POST the offer, get the answer (HTTP/1.1, one request, connection closed).
async fn post_offer(endpoint: &str, offer: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(endpoint)?;
    let addr = http_host(endpoint)?;
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("{endpoint}: cannot connect to the WHEP endpoint"))?;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{offer}",
        &url[url::Position::BeforePath..],
        &url[url::Position::BeforeHost..url::Position::AfterPort],
        offer.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .with_context(|| format!("{endpoint}: no answer in 10 s"))??;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("{endpoint}: not an HTTP response"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "201" {
        bail!("{endpoint}: WHEP offer refused ({status}): {}", body.trim());
    }
    Ok(body.to_owned())
}
