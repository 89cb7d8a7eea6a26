//! The session description the camera answers DESCRIBE with.

use super::live::TrackInfo;

/// SDP for the camera's tracks, plus the ONVIF backchannel (a `sendonly` PCMU audio the client
/// sends to) when asked for.
pub fn describe(tracks: &[TrackInfo], backchannel: bool, session_id: u64, host: &str) -> String {
    let mut sdp = format!(
        "v=0\r\n\
         o=- {session_id} 1 IN IP4 {host}\r\n\
         s=lockstep sim-camera\r\n\
         i=beep-flash test pattern\r\n\
         c=IN IP4 0.0.0.0\r\n\
         t=0 0\r\n\
         a=control:*\r\n\
         a=range:npt=now-\r\n"
    );
    for (index, t) in tracks.iter().enumerate() {
        sdp.push_str(&format!(
            "m={} 0 RTP/AVP {pt}\r\na=rtpmap:{pt} {}\r\n",
            t.media,
            t.rtpmap,
            pt = t.payload_type
        ));
        if let Some(fmtp) = &t.fmtp {
            sdp.push_str(&format!("a=fmtp:{} {fmtp}\r\n", t.payload_type));
        }
        sdp.push_str(&format!("a=control:trackID={index}\r\n"));
    }
    if backchannel {
        sdp.push_str(&format!(
            "m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID={}\r\na=sendonly\r\n",
            tracks.len()
        ));
    }
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracks() -> Vec<TrackInfo> {
        vec![
            TrackInfo {
                media: "video",
                payload_type: 96,
                rtpmap: "H264/90000".into(),
                fmtp: Some("packetization-mode=1".into()),
            },
            TrackInfo {
                media: "audio",
                payload_type: 8,
                rtpmap: "PCMA/8000".into(),
                fmtp: None,
            },
        ]
    }

    #[test]
    fn lists_tracks_with_controls() {
        let sdp = describe(&tracks(), false, 1, "127.0.0.1");
        assert!(sdp.contains("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"));
        assert!(sdp.contains("a=fmtp:96 packetization-mode=1\r\n"));
        assert!(sdp.contains("a=control:trackID=1\r\n"));
        assert!(!sdp.contains("sendonly"));
    }

    #[test]
    fn backchannel_is_a_sendonly_pcmu_track() {
        let sdp = describe(&tracks(), true, 1, "127.0.0.1");
        assert!(sdp.ends_with(
            "m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=2\r\na=sendonly\r\n"
        ));
    }
}
