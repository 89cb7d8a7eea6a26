//! Which of a camera's streams a viewer gets: the main one (what is recorded), or the camera's
//! substream — asked for (`?stream=sub`, the grid), or chosen because the viewer's offer cannot
//! receive the main stream's codec (an H.265 camera and a browser without H.265 over WebRTC).

use std::sync::Arc;

use axum::http::StatusCode;
use lockstep_media::SourceFeed;
use lockstep_webrtc::whep::check_codecs;

use super::camera::CameraHandle;
use super::state::ApiError;

/// What a viewer asked for (`stream=` in the WHEP query or the signalling `watch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamRequest {
    /// The main stream, or the substream when the offer cannot receive the main one.
    #[default]
    Auto,
    Main,
    Sub,
}

impl StreamRequest {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("auto") => Ok(StreamRequest::Auto),
            Some("main") => Ok(StreamRequest::Main),
            Some("sub") => Ok(StreamRequest::Sub),
            Some(other) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("stream is \"main\", \"sub\" or \"auto\", not {other:?}"),
            )),
        }
    }

    /// `stream=` of a URL query (`None` when absent).
    pub fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        let value = query
            .unwrap_or("")
            .split('&')
            .find_map(|pair| pair.strip_prefix("stream="));
        StreamRequest::parse(value)
    }
}

/// The stream a viewer gets: its feed, and its name for the answer (`main` | `sub`).
pub fn choose_stream(
    camera: &CameraHandle,
    offer: &str,
    request: StreamRequest,
) -> Result<(Arc<SourceFeed>, &'static str), ApiError> {
    match (request, &camera.substream) {
        (StreamRequest::Auto, Some(substream)) => {
            // Until the main stream has connected its codec is unknown: the main stream.
            let main_refused = camera
                .feed
                .video_codec()
                .is_some_and(|codec| check_codecs(offer, codec).is_err());
            let sub_accepted = substream
                .feed
                .video_codec()
                .is_some_and(|codec| check_codecs(offer, codec).is_ok());
            named_stream(camera, main_refused && sub_accepted)
        }
        _ => named_stream(camera, request == StreamRequest::Sub),
    }
}

/// The main stream, or the substream (`404` when the camera has none).
pub fn named_stream(
    camera: &CameraHandle,
    sub: bool,
) -> Result<(Arc<SourceFeed>, &'static str), ApiError> {
    if !sub {
        return Ok((camera.feed.clone(), "main"));
    }
    match &camera.substream {
        Some(substream) => Ok((substream.feed.clone(), "sub")),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "camera {:?} has no substream (set substream_url, or substream = true with a \
                 brand preset)",
                camera.settings.name
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::camera::{CameraSettings, CameraState, CameraStatus, Substream};
    use super::*;
    use lockstep_media::Codec;

    #[test]
    fn the_query_names_the_stream_or_is_refused() {
        assert_eq!(
            StreamRequest::from_query(None).unwrap(),
            StreamRequest::Auto
        );
        assert_eq!(
            StreamRequest::from_query(Some("x=1&stream=sub")).unwrap(),
            StreamRequest::Sub
        );
        assert_eq!(
            StreamRequest::from_query(Some("stream=main")).unwrap(),
            StreamRequest::Main
        );
        let err = StreamRequest::from_query(Some("stream=hd")).unwrap_err();
        assert!(err.message().contains("\"hd\""), "{}", err.message());
    }

    fn camera(main: Codec, sub: Option<Codec>) -> CameraHandle {
        let status = |_| {
            tokio::sync::watch::channel(CameraStatus {
                sessions: 1,
                ..CameraStatus::new(CameraState::Live)
            })
            .1
        };
        let feed = |codec: Codec| {
            let feed = Arc::new(SourceFeed::new());
            feed.set_video_codec(codec);
            feed
        };
        CameraHandle {
            settings: Arc::new(CameraSettings {
                name: "door".into(),
                kind: "camera",
                url: String::new(),
                shown_url: String::new(),
                audio: true,
                record_audio: true,
                profile: lockstep_sync::LatencyProfile::Low,
                sync_offset_ms: 0,
                transport: lockstep_rtsp::ingest::RtpTransport::Tcp,
                echo: None,
            }),
            feed: feed(main),
            status: status(()),
            substream: sub.map(|codec| Substream {
                shown_url: String::new(),
                feed: feed(codec),
                status: status(()),
            }),
        }
    }

    const H264_ONLY: &str = "a=rtpmap:102 H264/90000\r\na=rtpmap:111 opus/48000/2\r\n";
    const BOTH: &str = "a=rtpmap:102 H264/90000\r\na=rtpmap:104 H265/90000\r\n";

    #[test]
    fn a_browser_without_h265_gets_the_substream() {
        let cam = camera(Codec::H265, Some(Codec::H264));
        let pick = |offer, request| choose_stream(&cam, offer, request).map(|(_, s)| s);
        assert_eq!(pick(H264_ONLY, StreamRequest::Auto).unwrap(), "sub");
        assert_eq!(pick(BOTH, StreamRequest::Auto).unwrap(), "main");
        assert_eq!(pick(BOTH, StreamRequest::Sub).unwrap(), "sub");
        // Asked for by name, the main stream is what the viewer gets (and WHEP then says 406).
        assert_eq!(pick(H264_ONLY, StreamRequest::Main).unwrap(), "main");

        let single = camera(Codec::H265, None);
        let pick = |offer, request| choose_stream(&single, offer, request).map(|(_, s)| s);
        assert_eq!(pick(H264_ONLY, StreamRequest::Auto).unwrap(), "main");
        let err = pick(BOTH, StreamRequest::Sub).unwrap_err();
        assert!(err.message().contains("no substream"), "{}", err.message());
    }
}
