//! The SDP a restream's DESCRIBE answers: the camera's video as it came (H.264 or H.265, its
//! parameter sets from the latest keyframe) and its audio as the live path makes it (Opus).

use base64::Engine as _;
use lockstep_media::h264::{self, split_annex_b};
use lockstep_media::{h265, Codec};

pub const VIDEO_PAYLOAD_TYPE: u8 = 96;
pub const AUDIO_PAYLOAD_TYPE: u8 = 97;
/// Track numbers in `a=control:trackID=N`.
pub const VIDEO_TRACK: usize = 0;
pub const AUDIO_TRACK: usize = 1;

/// What a restream offers.
#[derive(Debug, Clone)]
pub struct Offer {
    pub video: Codec,
    /// A keyframe in Annex B (its parameter sets go in the SDP), when one has been seen.
    pub keyframe: Option<Vec<u8>>,
    pub audio: bool,
}

pub fn sdp(offer: &Offer, camera: &str, session_id: u64, host: &str) -> String {
    let mut sdp = format!(
        "v=0\r\n\
         o=- {session_id} 1 IN IP4 {host}\r\n\
         s={camera}\r\n\
         i=lockstep restream: the synchronized timeline, with sender reports\r\n\
         c=IN IP4 0.0.0.0\r\n\
         t=0 0\r\n\
         a=control:*\r\n\
         a=range:npt=now-\r\n"
    );
    let pt = VIDEO_PAYLOAD_TYPE;
    let (encoding, fmtp) = match offer.video {
        Codec::H265 => ("H265", h265_fmtp(offer.keyframe.as_deref())),
        _ => ("H264", h264_fmtp(offer.keyframe.as_deref())),
    };
    sdp.push_str(&format!(
        "m=video 0 RTP/AVP {pt}\r\na=rtpmap:{pt} {encoding}/90000\r\na=fmtp:{pt} {fmtp}\r\n\
         a=control:trackID={VIDEO_TRACK}\r\n"
    ));
    if offer.audio {
        let pt = AUDIO_PAYLOAD_TYPE;
        // RFC 7587: Opus is always announced as 48000/2; the stream itself is mono.
        sdp.push_str(&format!(
            "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} opus/48000/2\r\n\
             a=fmtp:{pt} sprop-stereo=0\r\na=control:trackID={AUDIO_TRACK}\r\n"
        ));
    }
    sdp
}

fn h264_fmtp(keyframe: Option<&[u8]>) -> String {
    let nals = keyframe.map(split_annex_b).unwrap_or_default();
    let first = |kind: u8| nals.iter().find(|n| h264::nal_type(n) == kind).copied();
    match (first(7), first(8)) {
        (Some(sps), Some(pps)) => h264::sdp_fmtp(sps, pps),
        // Not seen yet: the sets come in band with every keyframe.
        _ => "packetization-mode=1".to_owned(),
    }
}

fn h265_fmtp(keyframe: Option<&[u8]>) -> String {
    let nals = keyframe.map(split_annex_b).unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD;
    let sets: Vec<String> = [(32, "sprop-vps"), (33, "sprop-sps"), (34, "sprop-pps")]
        .into_iter()
        .filter_map(|(kind, key)| {
            let nal = nals.iter().find(|n| h265::nal_type(n) == kind)?;
            Some(format!("{key}={}", b64.encode(nal)))
        })
        .collect();
    if sets.len() == 3 {
        sets.join(";")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_the_parameter_sets_of_the_latest_keyframe_and_opus() {
        let keyframe = [
            &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f][..],
            &[0, 0, 0, 1, 0x68, 0xce][..],
            &[0, 0, 0, 1, 0x65, 0x88][..],
        ]
        .concat();
        let offer = Offer {
            video: Codec::H264,
            keyframe: Some(keyframe),
            audio: true,
        };
        let sdp = sdp(&offer, "door", 1, "127.0.0.1");
        assert!(sdp.contains("a=rtpmap:96 H264/90000\r\n"), "{sdp}");
        assert!(sdp.contains("profile-level-id=42c01f"), "{sdp}");
        assert!(sdp.contains("sprop-parameter-sets=Z0LAHw==,aM4="), "{sdp}");
        assert!(sdp.contains("a=rtpmap:97 opus/48000/2\r\n"), "{sdp}");
        assert!(sdp.contains("a=control:trackID=1\r\n"), "{sdp}");
    }

    #[test]
    fn h265_without_audio_and_before_a_keyframe() {
        let offer = Offer {
            video: Codec::H265,
            keyframe: None,
            audio: false,
        };
        let sdp = sdp(&offer, "door", 1, "127.0.0.1");
        assert!(sdp.contains("a=rtpmap:96 H265/90000\r\n"), "{sdp}");
        assert!(!sdp.contains("m=audio"), "{sdp}");
    }
}
