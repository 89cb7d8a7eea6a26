//! The ONVIF backchannel client against the camera simulator (which plays what it receives on
//! its speaker) and against GStreamer's ONVIF server (an independent peer): opened with the
//! feature tag and Digest credentials, 20 ms G.711 (and G.726) packets delivered, closed with
//! TEARDOWN; a camera without a backchannel is refused with the reason; GStreamer announces its
//! backchannel only to a DESCRIBE with the feature tag.

use std::time::Duration;

use lockstep_media::g711::G711Law;
use lockstep_media::g726::G726Packing;
use lockstep_media::speaker_encoding::SpeakerEncoding;
use lockstep_rtsp::auth::Credentials;
use lockstep_rtsp::backchannel::{Backchannel, BackchannelError};
use lockstep_rtsp::client::RtspClient;
use lockstep_rtsp::sdp::Sdp;
use lockstep_rtsp::sim_camera::{SimCamera, SimCameraConfig};

#[path = "peers/speaker_camera.rs"]
mod speaker_camera;
use speaker_camera::SpeakerCamera;

const AGENT: &str = "lockstep-test";

/// `packets` 20 ms packets of a 1 kHz tone at 8 kHz (amplitude 8 000), in `encoding`.
fn tone_packets(encoding: SpeakerEncoding, packets: u32) -> Vec<Vec<u8>> {
    let mut encoder = encoding.encoder();
    (0..packets)
        .map(|n| {
            let samples: Vec<i16> = (0..160u32)
                .map(|k| {
                    let t = f64::from(n * 160 + k) / 8_000.0;
                    (8_000.0 * (2.0 * std::f64::consts::PI * 1_000.0 * t).sin()) as i16
                })
                .collect();
            let mut payload = Vec::new();
            encoder.encode(&samples, &mut payload);
            payload
        })
        .collect()
}

fn config(backchannel: bool) -> SimCameraConfig {
    SimCameraConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        width: 320,
        height: 240,
        video_bitrate_bps: 300_000,
        credentials: Some(Credentials {
            user: "admin".into(),
            password: "p@ss:w/rd".into(),
        }),
        backchannel,
        ..SimCameraConfig::default()
    }
}

fn credentials() -> Option<Credentials> {
    Some(Credentials {
        user: "admin".into(),
        password: "p@ss:w/rd".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_of_speech_reaches_the_cameras_speaker() {
    let camera = SimCamera::start(config(true)).await.expect("camera");
    let url = url::Url::parse(&camera.url()).expect("url");
    let mut talk = Backchannel::open(&url, credentials(), AGENT)
        .await
        .expect("backchannel");
    let codec = talk.codec().clone();
    assert!(
        matches!(codec.encoding, SpeakerEncoding::G711(_)),
        "{codec:?}"
    );
    assert_eq!(codec.clock_rate_hz, 8_000);
    // 50 packets of a 1 kHz tone, 20 ms each, paced as a talker's would be.
    let mut every = tokio::time::interval(Duration::from_millis(20));
    for payload in tone_packets(codec.encoding, 50) {
        every.tick().await;
        talk.send(&payload, 160).expect("sent");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while camera.backchannel_packets() < 50 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(camera.backchannel_packets(), 50);
    talk.close().await.expect("closed with TEARDOWN");
    camera.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_without_a_backchannel_is_refused_with_the_reason() {
    let camera = SimCamera::start(config(false)).await.expect("camera");
    let url = url::Url::parse(&camera.url()).expect("url");
    let refused = Backchannel::open(&url, credentials(), AGENT).await;
    let Err(e @ BackchannelError::NotOffered(_)) = refused else {
        panic!("{refused:?}");
    };
    assert!(e.to_string().contains("no ONVIF backchannel"), "{e}");
    // Wrong credentials are the camera's 401, not a missing backchannel.
    let camera = SimCamera::start(config(true)).await.expect("camera");
    let url = url::Url::parse(&camera.url()).expect("url");
    let wrong = Some(Credentials {
        user: "admin".into(),
        password: "wrong".into(),
    });
    let refused = Backchannel::open(&url, wrong, AGENT).await;
    assert!(
        matches!(refused, Err(BackchannelError::Client(_))),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamers_onvif_camera_plays_the_speech_and_sees_the_teardown() {
    let camera = SpeakerCamera::onvif("s3cret");
    let url = url::Url::parse(&camera.url).expect("url");
    let credentials = Some(Credentials {
        user: "admin".into(),
        password: "s3cret".into(),
    });
    let mut talk = Backchannel::open(&url, credentials, AGENT)
        .await
        .expect("backchannel");
    assert_eq!(talk.codec().encoding, SpeakerEncoding::G711(G711Law::MuLaw));
    assert_eq!(talk.codec().clock_rate_hz, 8_000);
    let mut every = tokio::time::interval(Duration::from_millis(20));
    for payload in tone_packets(SpeakerEncoding::G711(G711Law::MuLaw), 50) {
        every.tick().await;
        talk.send(&payload, 160).expect("sent");
    }
    // Its depayloader and µ-law decoder hand the speaker what we sent: 8 000 samples of a tone
    // whose peak µ-law keeps within 3 % of 8 000.
    let heard = tokio::task::spawn_blocking(move || {
        let all = camera.wait_for(Duration::from_secs(5), |speaker, _| {
            speaker.iter().map(|b| b.samples).sum::<usize>() >= 8_000
        });
        (camera, all)
    })
    .await
    .expect("waited");
    let (camera, all) = heard;
    let speaker = camera.speaker();
    assert!(all, "the speaker got {speaker:?}");
    assert!(
        speaker.iter().all(|b| (7_700..=8_300).contains(&b.peak)),
        "{speaker:?}"
    );
    talk.close().await.expect("closed with TEARDOWN");
    let camera = tokio::task::spawn_blocking(move || {
        assert!(
            camera.wait_for(Duration::from_secs(5), |_, teardowns| teardowns == 1),
            "the camera saw no TEARDOWN"
        );
        camera
    })
    .await
    .expect("waited");
    drop(camera);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_g726_speaker_plays_the_speech_at_its_level() {
    // GStreamer's ONVIF camera whose backchannel takes G726-32 (what several Hikvision and
    // Dahua speakers take): its depayloader and ffmpeg's G.726 decoder hand the speaker a
    // second of the tone.
    let camera = SpeakerCamera::onvif_g726("s3cret");
    let url = url::Url::parse(&camera.url).expect("url");
    let credentials = Some(Credentials {
        user: "admin".into(),
        password: "s3cret".into(),
    });
    let mut talk = Backchannel::open(&url, credentials, AGENT)
        .await
        .expect("backchannel");
    let codec = talk.codec().clone();
    assert_eq!(codec.encoding, SpeakerEncoding::G726(G726Packing::Rfc3551));
    assert_eq!((codec.payload_type, codec.clock_rate_hz), (96, 8_000));
    let mut every = tokio::time::interval(Duration::from_millis(20));
    for payload in tone_packets(codec.encoding, 50) {
        assert_eq!(payload.len(), 80);
        every.tick().await;
        talk.send(&payload, 160).expect("sent");
    }
    let (camera, all) = tokio::task::spawn_blocking(move || {
        let all = camera.wait_for(Duration::from_secs(5), |speaker, _| {
            speaker.iter().map(|b| b.samples).sum::<usize>() >= 8_000
        });
        (camera, all)
    })
    .await
    .expect("waited");
    let speaker = camera.speaker();
    assert!(all, "the speaker got {speaker:?}");
    // After the ADPCM's first adaptation, the tone's level (8 000) within 10 %.
    let settled: Vec<i32> = speaker.iter().skip(5).map(|b| b.peak).collect();
    assert!(
        settled.iter().all(|p| (7_200..=8_800).contains(p)),
        "{settled:?}"
    );
    talk.close().await.expect("closed with TEARDOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamers_camera_shows_its_backchannel_only_to_the_require_tag() {
    // ONVIF: the backchannel is announced only to a DESCRIBE that carries the feature tag;
    // a plain client (a viewer, a recorder) sees the camera's own streams alone.
    let camera = SpeakerCamera::onvif("s3cret");
    let url = url::Url::parse(&camera.url).expect("url");
    let credentials = Some(Credentials {
        user: "admin".into(),
        password: "s3cret".into(),
    });
    let mut plain = RtspClient::connect(&url, credentials.clone(), AGENT)
        .await
        .expect("connected");
    let (text, _) = plain.describe(&url).await.expect("DESCRIBE");
    let sdp = Sdp::parse(&text);
    assert!(sdp.media.iter().any(|m| m.media == "audio"), "{text}");
    assert!(!sdp.media.iter().any(|m| m.sendonly), "{text}");
    let mut tagged = RtspClient::connect(&url, credentials, AGENT)
        .await
        .expect("connected");
    tagged.require(lockstep_rtsp::backchannel::ONVIF_BACKCHANNEL);
    let (text, _) = tagged.describe(&url).await.expect("DESCRIBE");
    let sdp = Sdp::parse(&text);
    assert!(
        sdp.media.iter().any(|m| m.media == "audio" && m.sendonly),
        "{text}"
    );
}
