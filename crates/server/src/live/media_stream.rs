//! What `/api/media/{name}` sends, as a state machine without I/O: a JSON header saying how to
//! configure the browser's decoders, then one binary message per video access unit and per Opus
//! packet, stamped on the source's synchronized output timeline.
//!
//! Binary message: `kind` (1 video, 2 audio), `flags` (bit 0: keyframe), the frame's time on
//! the output timeline in µs since the header's origin (i64, big-endian), then the payload
//! (Annex B with parameter sets in band for video; one Opus packet for audio). The stamps are
//! the frames' due instants: the same capture-to-output mapping for both tracks, so a player
//! that presents each at its stamp plays them in sync.
//!
//! A viewer starts at a keyframe (the feed's cached one, with its true stamp: the player drops
//! what is already late); one that falls behind skips forward to the next keyframe and is told
//! so in a `skipped` message, so nothing queues without bound.

use std::time::{Instant, UNIX_EPOCH};

use lockstep_media::{webcodecs, Codec, LiveFrame, LiveMedia, LIVE_RATE_HZ};
use lockstep_webrtc::WallclockEpoch;
use serde_json::{json, Value};

pub const KIND_VIDEO: u8 = 1;
pub const KIND_AUDIO: u8 = 2;
pub const FLAG_KEYFRAME: u8 = 1;
pub const FRAME_HEADER_BYTES: usize = 10;

/// One message for the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
}

/// The decoders a header configures: changes only when the source's codec or SPS does.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoders {
    video: Option<String>,
    audio: bool,
}

#[derive(Debug)]
pub struct MediaStream {
    camera: String,
    stream: &'static str,
    /// Audio is sent (the camera's live audio is on).
    audio: bool,
    /// Timeline origin: the due instant of the first frame sent, and its Unix time.
    origin: Option<(Instant, i64)>,
    announced: Option<Decoders>,
    awaiting_keyframe: bool,
    /// Frames skipped since the last `skipped` message.
    unreported_skips: u64,
    pub frames_sent: u64,
    pub frames_skipped: u64,
}

impl MediaStream {
    pub fn new(camera: &str, stream: &'static str, audio: bool) -> Self {
        MediaStream {
            camera: camera.to_owned(),
            stream,
            audio,
            origin: None,
            announced: None,
            awaiting_keyframe: true,
            unreported_skips: 0,
            frames_sent: 0,
            frames_skipped: 0,
        }
    }

    /// The messages for one frame of the feed (none while waiting for a keyframe).
    /// `source_has_video`: the source announced a video codec (an audio-only source starts
    /// at its first audio frame instead of a keyframe).
    pub fn frame(&mut self, frame: &LiveFrame, source_has_video: bool) -> Vec<Outgoing> {
        let mut out = Vec::new();
        match frame.media {
            LiveMedia::Video { codec, keyframe } => {
                if keyframe {
                    if let Some(video) = webcodecs::codec_string(codec, &frame.data) {
                        self.announce(Some(video), frame.due, &mut out);
                        self.awaiting_keyframe = false;
                    } else if self.announced.is_none() {
                        // A keyframe without a readable SPS cannot start a decoder.
                        return out;
                    } else {
                        self.awaiting_keyframe = false;
                    }
                }
                if self.announced.is_none() {
                    return out; // joined mid-GOP: nothing missed, the start is the keyframe
                }
                if self.awaiting_keyframe || codec_mismatch(codec, self.announced.as_ref()) {
                    self.skip(1);
                    return out;
                }
                self.report_skips(&mut out);
                out.push(self.binary(KIND_VIDEO, keyframe, frame));
            }
            LiveMedia::Opus => {
                if !self.audio {
                    return out;
                }
                if self.announced.is_none() {
                    if source_has_video {
                        return out; // audio starts with the picture
                    }
                    self.announce(None, frame.due, &mut out);
                    self.awaiting_keyframe = false;
                }
                self.report_skips(&mut out);
                out.push(self.binary(KIND_AUDIO, false, frame));
            }
        }
        out
    }

    /// The viewer fell behind by `frames` (the feed lagged, or its queue was full): video
    /// waits for the next keyframe.
    pub fn skip(&mut self, frames: u64) {
        if self.announced.is_none() {
            return; // not started: the first keyframe is the start either way
        }
        self.frames_skipped += frames;
        self.unreported_skips += frames;
        self.awaiting_keyframe = true;
    }

    /// The header has gone out.
    pub fn started(&self) -> bool {
        self.announced.is_some()
    }

    pub fn audio(&self) -> bool {
        self.audio
    }

    /// A frame message (its first byte: the kind) was built but could not be queued.
    pub fn unsent(&mut self, kind: Option<u8>) {
        self.frames_sent -= 1;
        if kind == Some(KIND_VIDEO) {
            self.skip(1);
        } else {
            // Lost audio: the player conceals the gap; the picture goes on.
            self.frames_skipped += 1;
            self.unreported_skips += 1;
        }
    }

    fn announce(&mut self, video: Option<String>, due: Instant, out: &mut Vec<Outgoing>) {
        let decoders = Decoders {
            video,
            audio: self.audio,
        };
        if self.announced.as_ref() == Some(&decoders) {
            return;
        }
        let (_, origin_unix_us) = *self.origin.get_or_insert_with(|| (due, unix_us(due)));
        let header = json!({
            "type": "header",
            "camera": self.camera,
            "stream": self.stream,
            "video": decoders.video.as_ref().map(|codec| json!({
                "codec": codec,
                // No `description`: Annex B with the parameter sets before every keyframe.
                "format": "annexb",
            })),
            "audio": decoders.audio.then(|| json!({
                "codec": "opus",
                "sample_rate": LIVE_RATE_HZ,
                "channels": 1,
            })),
            "origin_unix_us": origin_unix_us,
        });
        out.push(Outgoing::Text(header.to_string()));
        self.announced = Some(decoders);
    }

    fn report_skips(&mut self, out: &mut Vec<Outgoing>) {
        if self.unreported_skips == 0 {
            return;
        }
        out.push(Outgoing::Text(
            skipped_json(self.unreported_skips).to_string(),
        ));
        self.unreported_skips = 0;
    }

    fn binary(&mut self, kind: u8, keyframe: bool, frame: &LiveFrame) -> Outgoing {
        let origin = self.origin.map_or(frame.due, |(origin, _)| origin);
        let ts_us = signed_micros(frame.due, origin);
        let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + frame.data.len());
        bytes.push(kind);
        bytes.push(if keyframe { FLAG_KEYFRAME } else { 0 });
        bytes.extend_from_slice(&ts_us.to_be_bytes());
        bytes.extend_from_slice(&frame.data);
        self.frames_sent += 1;
        Outgoing::Binary(bytes)
    }
}

fn codec_mismatch(codec: Codec, announced: Option<&Decoders>) -> bool {
    let prefix = match codec {
        Codec::H265 => "hvc1",
        _ => "avc1",
    };
    announced
        .and_then(|d| d.video.as_deref())
        .is_some_and(|video| !video.starts_with(prefix))
}

fn skipped_json(frames: u64) -> Value {
    json!({
        "type": "skipped",
        "frames": frames,
        "reason": "this viewer fell behind the camera: skipped forward to the next keyframe",
    })
}

/// A binary frame message read back: `(kind, keyframe, ts_us, payload)`; `None` when shorter
/// than its header.
pub fn parse_frame(bytes: &[u8]) -> Option<(u8, bool, i64, &[u8])> {
    let header: &[u8; FRAME_HEADER_BYTES] = bytes.get(..FRAME_HEADER_BYTES)?.try_into().ok()?;
    let [kind, flags, ts @ ..] = *header;
    Some((
        kind,
        flags & FLAG_KEYFRAME != 0,
        i64::from_be_bytes(ts),
        &bytes[FRAME_HEADER_BYTES..],
    ))
}

/// `at - origin` in µs, negative when `at` is earlier.
fn signed_micros(at: Instant, origin: Instant) -> i64 {
    match at.checked_duration_since(origin) {
        Some(after) => after.as_micros() as i64,
        None => -(origin.duration_since(at).as_micros() as i64),
    }
}

/// The Unix time of a monotonic instant, in µs.
fn unix_us(at: Instant) -> i64 {
    WallclockEpoch::now()
        .system_time(at)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    const SPS_PPS_IDR: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xaa, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88,
    ];

    fn video(t0: Instant, ms: u64, keyframe: bool) -> LiveFrame {
        LiveFrame {
            media: LiveMedia::Video {
                codec: Codec::H264,
                keyframe,
            },
            due: t0 + Duration::from_millis(ms),
            pts: ms as i64 * 90,
            data: Arc::from(if keyframe {
                SPS_PPS_IDR
            } else {
                &[0, 0, 0, 1, 0x41, 0x9a][..]
            }),
        }
    }

    fn opus(t0: Instant, ms: u64) -> LiveFrame {
        LiveFrame {
            media: LiveMedia::Opus,
            due: t0 + Duration::from_millis(ms),
            pts: ms as i64 * 48,
            data: Arc::from(&[0xf8u8, 0xff, 0xfe][..]),
        }
    }

    fn stamp(message: &Outgoing) -> (u8, u8, i64) {
        let Outgoing::Binary(b) = message else {
            panic!("not binary: {message:?}");
        };
        let (kind, keyframe, ts, _) = parse_frame(b).expect("a whole header");
        (kind, u8::from(keyframe), ts)
    }

    fn text(message: &Outgoing) -> Value {
        let Outgoing::Text(t) = message else {
            panic!("not text: {message:?}");
        };
        serde_json::from_str(t).unwrap()
    }

    #[test]
    fn a_viewer_starts_at_a_keyframe_with_a_header_and_stamps_in_microseconds() {
        let t0 = Instant::now();
        let mut s = MediaStream::new("door", "main", true);
        assert!(
            s.frame(&opus(t0, 0), true).is_empty(),
            "audio waits for the picture"
        );
        assert!(
            s.frame(&video(t0, 5, false), true).is_empty(),
            "no keyframe yet"
        );
        let out = s.frame(&video(t0, 40, true), true);
        assert_eq!(out.len(), 2);
        let header = text(&out[0]);
        assert_eq!(header["type"], "header");
        assert_eq!(header["video"]["codec"], "avc1.42c01f");
        assert_eq!(header["audio"]["sample_rate"], 48_000);
        assert!(header["origin_unix_us"].as_i64().unwrap() > 1_700_000_000_000_000);
        assert_eq!(stamp(&out[1]), (KIND_VIDEO, FLAG_KEYFRAME, 0));
        let Outgoing::Binary(b) = &out[1] else {
            unreachable!()
        };
        assert_eq!(parse_frame(b).unwrap().3, SPS_PPS_IDR);
        assert_eq!(parse_frame(&b[..FRAME_HEADER_BYTES - 1]), None);
        // Later frames on the same timeline, audio and video alike.
        let out = s.frame(&opus(t0, 60), true);
        assert_eq!(out.len(), 1, "what came before the start was not missed");
        assert_eq!(stamp(&out[0]), (KIND_AUDIO, 0, 20_000));
        assert_eq!(
            stamp(&s.frame(&video(t0, 73, false), true)[0]),
            (KIND_VIDEO, 0, 33_000)
        );
        assert_eq!(s.frames_sent, 3);
    }

    #[test]
    fn a_viewer_behind_skips_to_the_next_keyframe_and_is_told() {
        let t0 = Instant::now();
        let mut s = MediaStream::new("door", "main", true);
        s.frame(&video(t0, 0, true), true);
        s.skip(7);
        assert!(s.frame(&video(t0, 33, false), true).is_empty());
        // Audio goes on meanwhile (and carries the notice).
        let out = s.frame(&opus(t0, 40), true);
        assert_eq!(text(&out[0])["type"], "skipped");
        assert_eq!(text(&out[0])["frames"], 8);
        assert!(text(&out[0])["reason"]
            .as_str()
            .unwrap()
            .contains("fell behind"));
        assert_eq!(stamp(&out[1]).0, KIND_AUDIO);
        // The next keyframe resumes the picture; the header is not repeated (same SPS).
        let out = s.frame(&video(t0, 1000, true), true);
        assert_eq!(out.len(), 1);
        assert_eq!(stamp(&out[0]), (KIND_VIDEO, FLAG_KEYFRAME, 1_000_000));
        assert_eq!(s.frames_skipped, 8);
    }

    #[test]
    fn an_unqueued_video_frame_waits_for_a_keyframe() {
        let t0 = Instant::now();
        let mut s = MediaStream::new("door", "main", true);
        s.frame(&video(t0, 0, true), true);
        let out = s.frame(&video(t0, 33, false), true);
        assert_eq!(out.len(), 1);
        s.unsent(Some(KIND_VIDEO));
        assert_eq!((s.frames_sent, s.frames_skipped), (1, 1));
        assert!(s.frame(&video(t0, 66, false), true).is_empty());
    }

    #[test]
    fn audio_only_sources_and_silent_cameras() {
        let t0 = Instant::now();
        let mut s = MediaStream::new("tts", "main", true);
        let out = s.frame(&opus(t0, 0), false);
        assert_eq!(text(&out[0])["video"], Value::Null);
        assert_eq!(stamp(&out[1]), (KIND_AUDIO, 0, 0));
        // Video appearing later is announced with a new header.
        let out = s.frame(&video(t0, 20, true), true);
        assert_eq!(text(&out[0])["video"]["codec"], "avc1.42c01f");
        assert_eq!(stamp(&out[1]).2, 20_000);

        let mut silent = MediaStream::new("door", "main", false);
        let out = silent.frame(&video(t0, 0, true), true);
        assert_eq!(text(&out[0])["audio"], Value::Null);
        assert!(silent.frame(&opus(t0, 20), true).is_empty());
    }
}
