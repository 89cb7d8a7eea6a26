//! A camera's session description (RFC 8866), as far as a receiver needs it: each media section's
//! kind, first payload type, encoding, clock rate, channels, `fmtp`, control URL and direction.
//! Lenient where cameras are (unknown lines, missing `rtpmap` for static payload types, stray
//! whitespace), bounded where the network is.

/// Sections beyond this are ignored (a camera has a handful).
const MAX_MEDIA: usize = 32;

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpMedia {
    /// `video`, `audio`, `application`…
    pub media: String,
    /// The section's first payload type (the one a camera sends).
    pub payload_type: u8,
    /// The encoding name, lowercase (`h264`, `pcma`, `mpeg4-generic`…); empty when unknown.
    pub encoding: String,
    pub clock_rate_hz: u32,
    pub channels: Option<u16>,
    /// The `a=fmtp` parameters of the payload type, without the `a=fmtp:PT ` prefix.
    pub fmtp: Option<String>,
    /// `a=control`, as written (absolute, relative, or `*`).
    pub control: Option<String>,
    /// `a=sendonly` in the camera's answer: in ONVIF a backchannel (the client sends).
    pub sendonly: bool,
}

/// A parsed session description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sdp {
    /// The session-level `a=control`.
    pub control: Option<String>,
    pub media: Vec<SdpMedia>,
    /// Sections left out, with why (TP-Link writes `m=application/TP-LINK 0 RTP/AVP smart/1/…`).
    pub skipped: Vec<String>,
}

/// The RFC 3551 static payload types a camera may leave without `rtpmap`.
fn static_payload(pt: u8) -> Option<(&'static str, u32, Option<u16>)> {
    match pt {
        0 => Some(("pcmu", 8_000, Some(1))),
        8 => Some(("pcma", 8_000, Some(1))),
        10 => Some(("l16", 44_100, Some(2))),
        11 => Some(("l16", 44_100, Some(1))),
        26 => Some(("jpeg", 90_000, None)),
        32 => Some(("mpv", 90_000, None)),
        _ => None,
    }
}

impl Sdp {
    /// Parses `text`. A section that cannot be read is left out (and listed in `skipped`), as
    /// players do: the camera's other tracks still play.
    pub fn parse(text: &str) -> Sdp {
        let mut sdp = Sdp::default();
        let mut rtpmaps: Vec<Option<(String, u32, Option<u16>)>> = Vec::new();
        // Inside a section that was left out: its attributes are not the previous section's.
        let mut skipping = false;
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(m) = line.strip_prefix("m=") {
                if sdp.media.len() == MAX_MEDIA {
                    break;
                }
                let mut fields = m.split_whitespace();
                let media = fields.next().unwrap_or_default().to_ascii_lowercase();
                let Some(payload_type) = fields
                    .nth(2)
                    .and_then(|p| p.parse::<u8>().ok())
                    .filter(|p| *p < 128)
                else {
                    sdp.skipped.push(format!(
                        "SDP line {}: no payload type in {line:?}",
                        number + 1
                    ));
                    skipping = true;
                    continue;
                };
                skipping = false;
                sdp.media.push(SdpMedia {
                    media,
                    payload_type,
                    encoding: String::new(),
                    clock_rate_hz: 0,
                    channels: None,
                    fmtp: None,
                    control: None,
                    sendonly: false,
                });
                rtpmaps.push(None);
                continue;
            }
            let Some(attribute) = line.strip_prefix("a=") else {
                continue;
            };
            if skipping {
                continue;
            }
            let (name, value) = attribute.split_once(':').unwrap_or((attribute, ""));
            let value = value.trim();
            let Some(section) = sdp.media.last_mut() else {
                if name.eq_ignore_ascii_case("control") {
                    sdp.control = Some(value.to_owned());
                }
                continue;
            };
            let pt = section.payload_type.to_string();
            let for_pt = |v: &str| -> Option<String> {
                let (p, rest) = v.split_once(char::is_whitespace)?;
                (p == pt).then(|| rest.trim().to_owned())
            };
            match name.to_ascii_lowercase().as_str() {
                "control" => section.control = Some(value.to_owned()),
                "sendonly" => section.sendonly = true,
                "fmtp" => {
                    if let Some(params) = for_pt(value) {
                        section.fmtp.get_or_insert(params);
                    }
                }
                "rtpmap" => {
                    if let Some(map) = for_pt(value) {
                        let mut parts = map.split('/');
                        let encoding = parts.next().unwrap_or_default().to_ascii_lowercase();
                        let rate = parts.next().and_then(|r| r.trim().parse().ok());
                        let channels = parts.next().and_then(|c| c.trim().parse().ok());
                        if let Some(rate) = rate {
                            *rtpmaps.last_mut().expect("one per section") =
                                Some((encoding, rate, channels));
                        }
                    }
                }
                _ => {}
            }
        }
        for (section, rtpmap) in sdp.media.iter_mut().zip(rtpmaps) {
            let known = rtpmap.or_else(|| {
                static_payload(section.payload_type).map(|(e, r, c)| (e.to_owned(), r, c))
            });
            if let Some((encoding, rate, channels)) = known {
                section.encoding = encoding;
                section.clock_rate_hz = rate;
                section.channels = channels;
            }
        }
        sdp
    }
}

impl SdpMedia {
    /// The URL to SETUP this section at: its control resolved against `base` (the
    /// Content-Base, else the DESCRIBE URL).
    pub fn setup_url(&self, base: &url::Url) -> url::Url {
        resolve_control(base, self.control.as_deref())
    }
}

/// A control attribute (a track's, or the session's for PLAY) resolved against `base`. A
/// relative control is appended to the whole base, query included, after a `/` (as ffmpeg and
/// live555 do, and as cameras whose URL has a query — Dahua's `…realmonitor?channel=1&subtype=0`
/// — expect); `*` or none is the base itself.
pub fn resolve_control(base: &url::Url, control: Option<&str>) -> url::Url {
    let control = match control {
        None | Some("*") | Some("") => return base.clone(),
        Some(control) => control,
    };
    if let Ok(absolute) = url::Url::parse(control) {
        if absolute.has_host() {
            return absolute;
        }
    }
    let base_text = base.as_str();
    let joined = if base_text.ends_with('/') {
        format!("{base_text}{}", control.trim_start_matches('/'))
    } else {
        format!("{base_text}/{}", control.trim_start_matches('/'))
    };
    url::Url::parse(&joined).unwrap_or_else(|_| base.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAHUA: &str = "v=0\r\no=- 2251938202 2251938202 IN IP4 0.0.0.0\r\ns=Media Server\r\n\
        c=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\na=range:npt=now-\r\n\
        m=video 0 RTP/AVP 96\r\na=control:trackID=0\r\na=framerate:25.000000\r\n\
        a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=4D002A\r\n\
        a=recvonly\r\nm=audio 0 RTP/AVP 8\r\na=control:trackID=1\r\na=recvonly\r\n\
        m=audio 0 RTP/AVP 0\r\na=control:trackID=5\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n";

    #[test]
    fn sections_carry_their_codec_control_and_direction() {
        let sdp = Sdp::parse(DAHUA);
        assert_eq!(sdp.control.as_deref(), Some("*"));
        assert_eq!(sdp.media.len(), 3);
        let video = &sdp.media[0];
        assert_eq!(
            (
                video.media.as_str(),
                video.payload_type,
                video.encoding.as_str()
            ),
            ("video", 96, "h264")
        );
        assert_eq!(video.clock_rate_hz, 90_000);
        assert_eq!(
            video.fmtp.as_deref(),
            Some("packetization-mode=1;profile-level-id=4D002A")
        );
        // A static payload type without rtpmap.
        let audio = &sdp.media[1];
        assert_eq!(
            (audio.encoding.as_str(), audio.clock_rate_hz),
            ("pcma", 8_000)
        );
        assert!(!audio.sendonly);
        assert!(sdp.media[2].sendonly, "the ONVIF backchannel");
    }

    #[test]
    fn control_urls_resolve_as_cameras_mean_them() {
        let base =
            url::Url::parse("rtsp://10.0.0.5:554/cam/realmonitor?channel=1&subtype=0").unwrap();
        let media = |control: Option<&str>| SdpMedia {
            control: control.map(str::to_owned),
            ..Sdp::parse(DAHUA).media[0].clone()
        };
        assert_eq!(
            media(Some("trackID=0")).setup_url(&base).as_str(),
            "rtsp://10.0.0.5:554/cam/realmonitor?channel=1&subtype=0/trackID=0"
        );
        assert_eq!(
            media(Some("rtsp://10.0.0.9/other/track1"))
                .setup_url(&base)
                .as_str(),
            "rtsp://10.0.0.9/other/track1"
        );
        assert_eq!(media(Some("*")).setup_url(&base), base);
        assert_eq!(media(None).setup_url(&base), base);
        let slash = url::Url::parse("rtsp://h/Streaming/Channels/101/").unwrap();
        assert_eq!(
            media(Some("trackID=1")).setup_url(&slash).as_str(),
            "rtsp://h/Streaming/Channels/101/trackID=1"
        );
    }

    #[test]
    fn unreadable_sections_are_left_out_never_a_panic() {
        let tplink = Sdp::parse(
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n\
             m=application/TP-LINK 0 RTP/AVP smart/1/90000\r\na=rtpmap:95 TP-LINK/90000\r\n\
             a=control:track3\r\n",
        );
        assert_eq!(tplink.media.len(), 1);
        assert_eq!(
            tplink.media[0].control, None,
            "track3 is the skipped section's"
        );
        assert!(tplink.skipped[0].contains("line 3"), "{:?}", tplink.skipped);
        assert!(Sdp::parse("").media.is_empty());
        let odd = Sdp::parse("a=rtpmap:96\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 /\r\na=fmtp:\r\n");
        assert_eq!(odd.media[0].encoding, "");
    }
}
