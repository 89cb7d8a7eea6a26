//! The camera simulator against a strict client on loopback: what it sends must be the truth
//! (reports, stripe, beep and flash at one instant), and bad clients must not hurt good ones.

mod common;

use std::time::Duration;

use common::{decode_audio, decode_video, parse_sender_report, RtspClient};
use lockstep_media::beep_flash::BeepDetector;
use lockstep_rtsp::auth::{digest_authorization, Credentials, REALM};
use lockstep_rtsp::rtp::{parse_rtp, rtp_packet};
use lockstep_rtsp::sim_camera::{AudioCodec, Impairments, SimCamera, SimCameraConfig};
use lockstep_sync::SenderReportClock;
use tokio::io::AsyncReadExt;

fn small_camera() -> SimCameraConfig {
    SimCameraConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        width: 320,
        height: 240,
        video_bitrate_bps: 600_000,
        report_interval: Duration::from_secs(1),
        gop_frames: 30,
        ..SimCameraConfig::default()
    }
}

/// Signed distance between two 32-bit RTP times.
fn ticks(from: u32, to: u32) -> i64 {
    i64::from(to.wrapping_sub(from) as i32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_stream_tells_the_truth() {
    let camera = SimCamera::start(small_camera()).await.unwrap();
    let url = camera.url();
    let mut client = RtspClient::connect(camera.local_addr()).await;
    let options = client.request("OPTIONS", &url, &[]).await;
    assert_eq!(options.status, 200);
    assert!(options.header("Public").unwrap().contains("DESCRIBE"));
    let describe = client.request("DESCRIBE", &url, &[]).await;
    assert!(describe.body.contains("a=rtpmap:96 H264/90000"));
    assert!(describe.body.contains("a=rtpmap:8 PCMA/8000"));
    assert!(describe.body.contains("sprop-parameter-sets="));
    assert!(
        !describe.body.contains("sendonly"),
        "no backchannel unless asked"
    );

    let play = client.play_tcp(&url).await;
    let rtp_info = play.header("RTP-Info").unwrap().to_owned();
    client.receive_for(Duration::from_millis(3_500)).await;

    // Reports come first, so the client can sync at once.
    assert_eq!(client.interleaved[0].0 % 2, 1, "first frame is RTCP");
    let video_reports: Vec<_> = client
        .on_channel(1)
        .into_iter()
        .filter_map(parse_sender_report)
        .collect();
    let audio_reports: Vec<_> = client
        .on_channel(3)
        .into_iter()
        .filter_map(parse_sender_report)
        .collect();
    assert!(video_reports.len() >= 3 && audio_reports.len() >= 3);
    let (_, v_wall, v_rtp) = video_reports[video_reports.len() - 1];
    let (_, a_wall, a_rtp) = audio_reports[audio_reports.len() - 1];
    let video_wall = |ts: u32| v_wall + ticks(v_rtp, ts) * 1_000_000_000 / 90_000;

    // RTP-Info: the first sequence numbers, and RTP times of one instant on both tracks.
    let video_packets = client.on_channel(0);
    let audio_packets = client.on_channel(2);
    let first_video = parse_rtp(video_packets[0]).unwrap();
    let first_audio = parse_rtp(audio_packets[0]).unwrap();
    let field = |track: usize, key: &str| -> u32 {
        rtp_info
            .split(',')
            .find(|e| e.contains(&format!("trackID={track}")))
            .and_then(|e| e.split(';').find_map(|p| p.strip_prefix(key)))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert_eq!(field(0, "seq=") as u16, first_video.seq);
    assert_eq!(field(1, "seq=") as u16, first_audio.seq);
    let info_video_wall = video_wall(field(0, "rtptime="));
    let info_audio_wall = a_wall + ticks(a_rtp, field(1, "rtptime=")) * 1_000_000_000 / 8_000;
    assert!(
        (info_video_wall - info_audio_wall).abs() < 1_000_000,
        "RTP-Info instants differ by {} ns",
        info_video_wall - info_audio_wall
    );

    // Every packet in order, none lost on a clean link.
    for packets in [&video_packets, &audio_packets] {
        for pair in packets.windows(2) {
            let (a, b) = (parse_rtp(pair[0]).unwrap(), parse_rtp(pair[1]).unwrap());
            assert_eq!(a.seq.wrapping_add(1), b.seq);
        }
    }

    // Pictures: consecutive indices, and the reports map each one to its capture wallclock.
    let pictures = decode_video(&video_packets);
    // Decoding starts at the first keyframe (GOP 1 s): at least 2.5 s of pictures.
    assert!(pictures.len() > 70, "{} pictures in 3.5 s", pictures.len());
    for pair in pictures.windows(2) {
        assert_eq!(pair[0].frame_index + 1, pair[1].frame_index);
    }
    for p in &pictures {
        let capture = p.capture_unix_micros.unwrap() as i64 * 1_000;
        let mapped = video_wall(p.rtp_ts);
        assert!(
            (mapped - capture).abs() < 1_000_000,
            "frame {} mapped {} ns from its capture",
            p.frame_index,
            mapped - capture
        );
        assert_eq!(p.flash, p.frame_index % 30 == 0);
    }

    // Beeps start at the flash's true instant, on the report-mapped timeline.
    let mut beeps = BeepDetector::new(8_000);
    for (ts, samples) in decode_audio(&audio_packets) {
        let secs = ticks(a_rtp, ts) as f64 / 8_000.0;
        beeps.push(secs, &samples);
    }
    let flashes: Vec<i64> = pictures
        .iter()
        .filter(|p| p.flash)
        .map(|p| video_wall(p.rtp_ts))
        .collect();
    assert!(flashes.len() >= 3);
    let mut paired = 0;
    for onset in beeps.onsets() {
        let onset_wall = a_wall + (onset * 1e9) as i64;
        if let Some(flash) = flashes
            .iter()
            .find(|f| (**f - onset_wall).abs() < 100_000_000)
        {
            assert!(
                (onset_wall - flash).abs() < 1_000_000,
                "beep {} ns from its flash",
                onset_wall - flash
            );
            paired += 1;
        }
    }
    assert!(paired >= 3, "{paired} beeps paired");
    camera.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reveal_a_drifting_audio_clock() {
    let camera = SimCamera::start(SimCameraConfig {
        audio_clock_ppm: -300.0,
        video_clock_ppm: 50.0,
        // Reports carry whole ticks (125 µs at 8 kHz): 20 of them over 4 s pin the rate to a few
        // ppm (1σ ≈ 7 ppm for the audio clock).
        report_interval: Duration::from_millis(200),
        ..small_camera()
    })
    .await
    .unwrap();
    let mut client = RtspClient::connect(camera.local_addr()).await;
    client.play_tcp(&camera.url()).await;
    client.receive_for(Duration::from_secs(4)).await;
    let ppm = |channel: u8, rate: u32| {
        let mut clock = SenderReportClock::new(rate);
        let mut unwrap = lockstep_sync::TimestampUnwrapper::default();
        for (_, wall, rtp) in client
            .on_channel(channel)
            .into_iter()
            .filter_map(parse_sender_report)
        {
            let ntp = lockstep_sync::NtpTime::from_unix_nanos(wall);
            clock.handle_sender_report(unwrap.unwrap(rtp), ntp).unwrap();
        }
        clock.clock_error_ppm().unwrap()
    };
    let audio = ppm(3, 8_000);
    let video = ppm(1, 90_000);
    assert!((audio + 300.0).abs() < 30.0, "audio {audio} ppm");
    assert!((video - 50.0).abs() < 5.0, "video {video} ppm");
    camera.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_digest_and_basic() {
    let credentials = Credentials {
        user: "admin".into(),
        password: "s3cret".into(),
    };
    let camera = SimCamera::start(SimCameraConfig {
        credentials: Some(credentials.clone()),
        ..small_camera()
    })
    .await
    .unwrap();
    let url = camera.url();
    let mut client = RtspClient::connect(camera.local_addr()).await;
    assert_eq!(client.request("OPTIONS", &url, &[]).await.status, 200);
    let challenge = client.request("DESCRIBE", &url, &[]).await;
    assert_eq!(challenge.status, 401);
    let offers = challenge.headers_named("WWW-Authenticate");
    assert!(offers[0].starts_with("Digest ") && offers[1].starts_with("Basic "));
    let nonce = offers[0]
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let digest = digest_authorization(&credentials, "DESCRIBE", &url, REALM, &nonce);
    let ok = client
        .request("DESCRIBE", &url, &[("Authorization", &digest)])
        .await;
    assert_eq!(ok.status, 200);
    let basic = "Basic YWRtaW46czNjcmV0"; // admin:s3cret
    let ok = client
        .request("DESCRIBE", &url, &[("Authorization", basic)])
        .await;
    assert_eq!(ok.status, 200);
    let wrong = "Basic YWRtaW46d3Jvbmc="; // admin:wrong
    let denied = client
        .request("DESCRIBE", &url, &[("Authorization", wrong)])
        .await;
    assert_eq!(denied.status, 401);
    camera.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_get_the_right_status_and_good_ones_play_on() {
    let camera = SimCamera::start(SimCameraConfig {
        session_timeout: Duration::from_secs(1),
        ..small_camera()
    })
    .await
    .unwrap();
    let url = camera.url();
    let mut good = RtspClient::connect(camera.local_addr()).await;
    good.play_tcp(&url).await;
    good.receive_for(Duration::from_millis(500)).await;
    let before = good.interleaved.len();

    let mut bad = RtspClient::connect(camera.local_addr()).await;
    bad.send_raw(b"OPTIONS * RTSP/1.0\r\n\r\n").await;
    assert_eq!(bad.response().await.unwrap().status, 400, "no CSeq");
    let describe = bad
        .request("DESCRIBE", &url.replace("/cam", "/nope"), &[])
        .await;
    assert_eq!(describe.status, 404);
    let unknown_track = bad
        .request(
            "SETUP",
            &format!("{url}/trackID=9"),
            &[("Transport", "RTP/AVP/TCP;interleaved=0-1")],
        )
        .await;
    assert_eq!(unknown_track.status, 404);
    let bad_transport = bad
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[("Transport", "RTP/SAVP;unicast")],
        )
        .await;
    assert_eq!(bad_transport.status, 461);
    assert_eq!(bad.request("PLAY", &url, &[]).await.status, 455);
    assert_eq!(
        bad.request("PLAY", &url, &[("Session", "DEADBEEF")])
            .await
            .status,
        454
    );
    assert_eq!(bad.request("FROBNICATE", &url, &[]).await.status, 501);
    let setup = bad
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[("Transport", "RTP/AVP/TCP;interleaved=0-1")],
        )
        .await;
    let session = setup.session();
    assert_eq!(
        bad.request("PLAY", &url, &[("Session", &session)])
            .await
            .status,
        200
    );
    let late_setup = bad
        .request(
            "SETUP",
            &format!("{url}/trackID=1"),
            &[
                ("Transport", "RTP/AVP/TCP;interleaved=2-3"),
                ("Session", &session),
            ],
        )
        .await;
    assert_eq!(late_setup.status, 455, "SETUP while playing");
    // Garbage: a 400 and the connection is closed.
    bad.send_raw(b"\x16\x03\x01 definitely not RTSP\r\n\r\n")
        .await;
    let garbage = bad.response().await.unwrap();
    assert_eq!(garbage.status, 400);
    bad.receive_for(Duration::from_millis(500)).await;
    assert!(bad.closed, "connection closed after garbage");

    // Half-open: a client that sends half a request and goes quiet is dropped at the timeout.
    let mut half = RtspClient::connect(camera.local_addr()).await;
    half.send_raw(b"DESCRIBE rtsp://x/cam RTSP/1.0\r\nCSeq: 1\r\n")
        .await;
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), half.stream.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0))), "half-open client dropped");

    // The good client never noticed.
    good.receive_for(Duration::from_millis(1_000)).await;
    let video: Vec<_> = good
        .on_channel(0)
        .iter()
        .map(|p| parse_rtp(p).unwrap().seq)
        .collect();
    assert!(good.interleaved.len() > before + 30);
    for pair in video.windows(2) {
        assert_eq!(pair[0].wrapping_add(1), pair[1], "good client lost packets");
    }
    camera.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_transport_with_loss_and_duplicates() {
    let camera = SimCamera::start(SimCameraConfig {
        impairments: Impairments {
            loss: 0.1,
            duplicate: 0.1,
            ..Impairments::default()
        },
        ..small_camera()
    })
    .await
    .unwrap();
    let url = camera.url();
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtcp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ports = format!(
        "RTP/AVP;unicast;client_port={}-{}",
        rtp.local_addr().unwrap().port(),
        rtcp.local_addr().unwrap().port()
    );
    let mut client = RtspClient::connect(camera.local_addr()).await;
    client.request("DESCRIBE", &url, &[]).await;
    let setup = client
        .request(
            "SETUP",
            &format!("{url}/trackID=1"),
            &[("Transport", &ports)],
        )
        .await;
    assert_eq!(setup.status, 200);
    assert!(setup.header("Transport").unwrap().contains("server_port="));
    let play = client
        .request("PLAY", &url, &[("Session", &setup.session())])
        .await;
    assert_eq!(play.status, 200);
    let mut seqs = Vec::new();
    let mut buf = [0u8; 2_048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, rtp.recv(&mut buf)).await {
        seqs.push(parse_rtp(&buf[..n]).unwrap().seq);
    }
    let mut reports = 0;
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(100), rtcp.recv(&mut buf)).await
    {
        reports += usize::from(parse_sender_report(&buf[..n]).is_some());
    }
    assert!(seqs.len() > 100, "{} audio packets in 3 s", seqs.len());
    let distinct: std::collections::BTreeSet<u16> = seqs.iter().copied().collect();
    let duplicates = seqs.len() - distinct.len();
    let span = usize::from(seqs[seqs.len() - 1].wrapping_sub(seqs[0])) + 1;
    let lost = span - distinct.len();
    assert!(duplicates > 0, "10 % duplication shows");
    assert!(lost > 0, "10 % loss shows");
    assert!(reports >= 1, "sender reports arrive on the RTCP port");
    camera.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_plays_on_the_speaker_and_echoes_into_the_microphone() {
    let camera = SimCamera::start(SimCameraConfig {
        echo_delay: Duration::from_millis(150),
        echo_gain_db: 0.0,
        audio: AudioCodec::Pcmu,
        ..small_camera()
    })
    .await
    .unwrap();
    let url = camera.url();
    let require = ("Require", "www.onvif.org/ver20/backchannel");
    let mut client = RtspClient::connect(camera.local_addr()).await;
    // Without the header the track is absent, as on real devices.
    let plain = client.request("DESCRIBE", &url, &[]).await;
    assert_eq!(plain.body.matches("m=").count(), 2);
    let describe = client.request("DESCRIBE", &url, &[require]).await;
    assert_eq!(describe.status, 200);
    assert!(describe.body.contains(
        "m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=2\r\na=sendonly"
    ));
    let mut session = String::new();
    for (track, channels) in [(1, "2-3"), (2, "4-5")] {
        let transport = format!("RTP/AVP/TCP;unicast;interleaved={channels}");
        let mut headers = vec![("Transport", transport.as_str()), require];
        if !session.is_empty() {
            headers.push(("Session", session.as_str()));
        }
        let setup = client
            .request("SETUP", &format!("{url}/trackID={track}"), &headers)
            .await;
        assert_eq!(setup.status, 200, "{setup:?}");
        session = setup.session();
    }
    let play = client
        .request("PLAY", &url, &[("Session", &session), require])
        .await;
    assert_eq!(play.status, 200);
    // Half a second of loud 400 Hz, between beeps, on the backchannel.
    client.receive_for(Duration::from_millis(300)).await;
    let sent_at = tokio::time::Instant::now();
    for k in 0..25u32 {
        let samples: Vec<i16> = (0..160)
            .map(|n| {
                let t = f64::from(k * 160 + n) / 8_000.0;
                ((2.0 * std::f64::consts::PI * 400.0 * t).sin() * 16_000.0) as i16
            })
            .collect();
        let mut payload = Vec::new();
        lockstep_media::g711::G711Law::MuLaw.encode(&samples, &mut payload);
        let packet = rtp_packet(0, false, k as u16, k * 160, 0xbac4, &payload);
        client
            .send_raw(&lockstep_rtsp::message::interleave(4, &packet))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.receive_for(Duration::from_millis(1_000)).await;
    assert!(camera.backchannel_packets() >= 25);
    // The microphone heard it: energy in the audio that is neither silence nor a beep tone.
    let loud: usize = decode_audio(&client.on_channel(2))
        .iter()
        .flat_map(|(_, s)| s.iter())
        .filter(|x| x.abs() > 0.3 && x.abs() < 0.49)
        .count();
    assert!(loud > 500, "echo heard in {loud} samples");
    let _ = sent_at;

    // A camera without a backchannel refuses the requirement.
    let no_backchannel = SimCamera::start(SimCameraConfig {
        backchannel: false,
        ..small_camera()
    })
    .await
    .unwrap();
    let mut client = RtspClient::connect(no_backchannel.local_addr()).await;
    let refused = client
        .request("DESCRIBE", &no_backchannel.url(), &[require])
        .await;
    assert_eq!(refused.status, 551);
    assert_eq!(
        refused.header("Unsupported"),
        Some("www.onvif.org/ver20/backchannel")
    );
    no_backchannel.shutdown();
    camera.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_changes_identities_and_drop_closes_connections() {
    let camera = SimCamera::start(SimCameraConfig {
        reboot_after: Some(Duration::from_millis(800)),
        drop_after: Some(Duration::from_millis(3_200)),
        ..small_camera()
    })
    .await
    .unwrap();
    let mut client = RtspClient::connect(camera.local_addr()).await;
    client.play_tcp(&camera.url()).await;
    client.receive_for(Duration::from_secs(5)).await;
    assert!(client.closed, "--drop-after closed the connection");
    let ssrcs: std::collections::BTreeSet<u32> = client
        .on_channel(0)
        .iter()
        .map(|p| parse_rtp(p).unwrap().ssrc)
        .collect();
    assert_eq!(ssrcs.len(), 2, "a new SSRC after the reboot");
    // The camera takes new clients after the drop.
    let mut again = RtspClient::connect(camera.local_addr()).await;
    assert_eq!(
        again.request("OPTIONS", &camera.url(), &[]).await.status,
        200
    );
    camera.shutdown();
}

/// go2rtc's client asks for the backchannel on DESCRIBE only, then sets up every media in SDP
/// order on channels `2i`-`2i+1` at Content-Base + control, and plays at Content-Base.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_answers_a_go2rtc_style_client() {
    let camera = SimCamera::start(small_camera()).await.unwrap();
    let mut client = RtspClient::connect(camera.local_addr()).await;
    let describe = client
        .request(
            "DESCRIBE",
            &camera.url(),
            &[
                ("Accept", "application/sdp"),
                ("Require", "www.onvif.org/ver20/backchannel"),
            ],
        )
        .await;
    assert_eq!(describe.status, 200);
    let base = describe.header("Content-Base").unwrap().to_owned();
    assert!(base.ends_with("/cam/"), "{base}");
    let controls: Vec<String> = describe
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("a=control:trackID="))
        .map(|id| format!("trackID={id}"))
        .collect();
    assert_eq!(controls.len(), 3);
    let mut session = String::new();
    for (i, control) in controls.iter().enumerate() {
        let transport = format!("RTP/AVP/TCP;unicast;interleaved={}-{}", i * 2, i * 2 + 1);
        let mut headers = vec![("Transport", transport.as_str())];
        if !session.is_empty() {
            headers.push(("Session", session.as_str()));
        }
        let setup = client
            .request("SETUP", &format!("{base}{control}"), &headers)
            .await;
        assert_eq!(setup.status, 200, "SETUP {control}: {setup:?}");
        assert!(setup
            .header("Transport")
            .unwrap()
            .starts_with("RTP/AVP/TCP;"));
        session = setup.session();
    }
    let play = client
        .request("PLAY", &base, &[("Session", &session)])
        .await;
    assert_eq!(play.status, 200);
    for k in 0..10u16 {
        let packet = rtp_packet(0, false, k, u32::from(k) * 160, 0x9021, &[0xff; 160]);
        client
            .send_raw(&lockstep_rtsp::message::interleave(4, &packet))
            .await;
    }
    client.receive_for(Duration::from_millis(500)).await;
    assert!(camera.backchannel_packets() >= 10);
    assert!(!client.on_channel(0).is_empty(), "video flows alongside");
    camera.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_keepalive_and_teardown() {
    let camera = SimCamera::start(small_camera()).await.unwrap();
    let url = camera.url();
    let mut client = RtspClient::connect(camera.local_addr()).await;
    let play = client.play_tcp(&url).await;
    let session = play.session();
    client.receive_for(Duration::from_millis(500)).await;
    assert!(!client.on_channel(0).is_empty());
    let keepalive = client
        .request("GET_PARAMETER", &url, &[("Session", &session)])
        .await;
    assert_eq!(keepalive.status, 200);
    let pause = client
        .request("PAUSE", &url, &[("Session", &session)])
        .await;
    assert_eq!(pause.status, 200);
    client.receive_for(Duration::from_millis(200)).await;
    let paused_at = client.interleaved.len();
    client.receive_for(Duration::from_millis(600)).await;
    assert_eq!(
        client.interleaved.len(),
        paused_at,
        "nothing flows while paused"
    );
    let resume = client.request("PLAY", &url, &[("Session", &session)]).await;
    assert_eq!(resume.status, 200);
    assert!(resume.header("RTP-Info").is_some());
    client.receive_for(Duration::from_millis(500)).await;
    assert!(client.interleaved.len() > paused_at + 10, "flowing again");
    let teardown = client
        .request("TEARDOWN", &url, &[("Session", &session)])
        .await;
    assert_eq!(teardown.status, 200);
    let gone = client.request("PLAY", &url, &[("Session", &session)]).await;
    assert_eq!(gone.status, 454, "the session is gone");
    camera.shutdown();
}
