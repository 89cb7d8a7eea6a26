//! `lockstep push-sim`: a simulated talking avatar. It pushes the beep-flash pattern (a 1 kHz
//! beep and a white picture at the same instant once a second, frames stamped in their stripe)
//! to a push source, paced from one monotonic anchor as a real avatar engine would, and prints
//! the server's events as JSON lines on stdout.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use futures::{SinkExt as _, StreamExt as _};
use lockstep_media::pattern::{beep_value, I420Frame, StripeData};
use lockstep_media::{H264Encoder, LiveAudioEncoder};
use lockstep_rtsp::sim_camera::parse_size;
use lockstep_webrtc::whep_client::Track;
use lockstep_webrtc::whip_client::WhipClient;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::PushSimArgs;
use crate::live::push_protocol::{encode_media, KIND_AUDIO, KIND_VIDEO};

/// The producer clock's reading at the anchor: any origin works, the server maps it.
const CLOCK_BASE_US: i64 = 1_000_000_000;

pub async fn run(args: &PushSimArgs) -> anyhow::Result<()> {
    let (width, height) = parse_size(&args.size).map_err(|e| anyhow::anyhow!(e))?;
    if args.fps == 0 || !(8_000..=192_000).contains(&args.rate) {
        bail!("--fps must be positive and --rate 8000 to 192000");
    }
    if args.whip {
        return run_whip(args, width, height).await;
    }
    // TCP_NODELAY: with Nagle, a 20 ms chunk waits for the server's delayed ACK (~40 ms late).
    let request = crate::measure::media_socket::request(&args.url, args.token.as_deref())?;
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .with_context(|| format!("cannot connect to {}", args.url))?;
    let (mut sink, mut stream) = socket.split();
    let anchor = Instant::now();
    let hello = serde_json::json!({
        "type": "hello",
        "audio": {"rate": args.rate, "channels": 1, "format": "s16le"},
        "video": {"width": width, "height": height, "format": "i420", "fps": args.fps},
        "clock_us": (!args.unstamped).then_some(CLOCK_BASE_US),
    });
    sink.send(Message::Text(hello.to_string().into())).await?;
    // Events are printed as they come; the server's close ends the program.
    let printer = tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Text(text)) => println!("{text}"),
                Ok(Message::Close(frame)) => {
                    if let Some(frame) = frame {
                        eprintln!("push-sim: closed {}: {}", frame.code, frame.reason);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("push-sim: {e}");
                    break;
                }
            }
        }
    });
    let chunk_samples = (args.rate / 50) as usize;
    let end = args.duration.map(|d| Duration::from_secs_f64(d.max(0.0)));
    let mut frame = I420Frame::new(width, height);
    let (mut chunk, mut picture) = (0i64, 0i64);
    let mut pcm = Vec::with_capacity(chunk_samples * 2);
    // What our clock reads, once a second, so the server follows it (design/contracts.md).
    let mut next_clock = anchor + Duration::from_secs(1);
    loop {
        let audio_us = chunk * 20_000;
        // Exact per frame (an integer frame period would drift 10 ppm at 30 fps).
        let video_us = picture * 1_000_000 / i64::from(args.fps);
        let next_us = audio_us.min(video_us);
        if end.is_some_and(|end| Duration::from_micros(next_us as u64) >= end) {
            break;
        }
        tokio::time::sleep_until((anchor + Duration::from_micros(next_us as u64)).into()).await;
        if !args.unstamped && Instant::now() >= next_clock {
            next_clock += Duration::from_secs(1);
            let now_us = CLOCK_BASE_US + anchor.elapsed().as_micros() as i64;
            let clock = serde_json::json!({"type": "clock", "clock_us": now_us});
            sink.send(Message::Text(clock.to_string().into())).await?;
        }
        let secs = next_us as f64 / 1e6;
        let silent = args
            .gap_every
            .is_some_and(|every| secs % every >= every - args.gap_secs);
        let stamp = (!args.unstamped).then_some(CLOCK_BASE_US + next_us);
        if audio_us <= video_us {
            chunk += 1;
            if silent {
                continue;
            }
            pcm.clear();
            for i in 0..chunk_samples {
                let t = secs + i as f64 / f64::from(args.rate);
                let v = (beep_value(t) * 32_767.0) as i16;
                pcm.extend_from_slice(&v.to_le_bytes());
            }
            sink.send(Message::Binary(
                encode_media(KIND_AUDIO, stamp, &pcm).into(),
            ))
            .await?;
        } else {
            let index = picture;
            picture += 1;
            if silent {
                continue;
            }
            draw_pattern(&mut frame, index, args.fps);
            sink.send(Message::Binary(
                encode_media(KIND_VIDEO, stamp, &frame.data).into(),
            ))
            .await?;
        }
    }
    sink.send(Message::Text(r#"{"type":"end"}"#.into())).await?;
    // RFC 6455: the client waits for the server to close TCP first.
    let _ = tokio::time::timeout(Duration::from_secs(5), printer).await;
    Ok(())
}

/// The same pattern published over WHIP: H.264 (OpenH264) and Opus written with their capture
/// instants, from which the sender reports are timed.
async fn run_whip(args: &PushSimArgs, width: usize, height: usize) -> anyhow::Result<()> {
    const VIDEO_BASE: i64 = 90_000;
    const AUDIO_BASE: i64 = 48_000;
    let mut client = WhipClient::connect_with(&args.url, args.token.as_deref())
        .await
        .with_context(|| format!("cannot publish to {}", args.url))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.ready() {
        if Instant::now() > deadline {
            bail!("{}: no WebRTC connection after 10 s", args.url);
        }
        client
            .pump(Instant::now() + Duration::from_millis(20))
            .await?;
    }
    eprintln!("push-sim: publishing over WHIP to {}", args.url);
    let mut encoder = H264Encoder::new(args.fps, 1_500_000, args.fps * 2)?;
    let mut opus = LiveAudioEncoder::fixed_frames()?;
    let anchor = Instant::now() + Duration::from_millis(20);
    let at = |ticks: i64, rate: i64| {
        let micros = ticks * 1_000_000 / rate;
        if micros >= 0 {
            anchor + Duration::from_micros(micros as u64)
        } else {
            anchor
                .checked_sub(Duration::from_micros(micros.unsigned_abs()))
                .unwrap_or(anchor)
        }
    };
    let end = args.duration.map(|d| Duration::from_secs_f64(d.max(0.0)));
    let mut frame = I420Frame::new(width, height);
    let (mut chunk, mut picture) = (0i64, 0i64);
    let mut packets = Vec::new();
    loop {
        let audio_us = chunk * 20_000;
        let video_us = picture * 1_000_000 / i64::from(args.fps);
        let next_us = audio_us.min(video_us);
        if end.is_some_and(|end| Duration::from_micros(next_us as u64) >= end) {
            break;
        }
        client
            .pump(anchor + Duration::from_micros(next_us as u64))
            .await?;
        if audio_us <= video_us {
            let pcm: Vec<i16> = (0..960)
                .map(|i| {
                    (beep_value(audio_us as f64 / 1e6 + f64::from(i) / 48_000.0) * 32_767.0) as i16
                })
                .collect();
            opus.push_audio(AUDIO_BASE + chunk * 960, 48_000, &pcm, 1.0, &mut packets)?;
            for p in packets.drain(..) {
                let captured = at(p.pts - AUDIO_BASE, 48_000);
                client.write(Track::Audio, p.pts.max(0) as u64, captured, p.data)?;
            }
            chunk += 1;
        } else {
            draw_pattern(&mut frame, picture, args.fps);
            let annex_b = lockstep_media::h264::annex_b(&encoder.encode(&frame)?.nals);
            let rtp = VIDEO_BASE + picture * 90_000 / i64::from(args.fps);
            client.write(Track::Video, rtp as u64, at(video_us, 1_000_000), annex_b)?;
            picture += 1;
        }
    }
    client.close().await?;
    Ok(())
}

/// Frame `index` of the pattern: white once a second (the frame at each whole second), the
/// stripe with its index and the wallclock now.
fn draw_pattern(frame: &mut I420Frame, index: i64, fps: u32) {
    frame.draw(
        index % i64::from(fps) == 0,
        StripeData {
            frame_index: index as u32,
            capture_unix_micros: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_micros() as u64),
        },
    );
}
