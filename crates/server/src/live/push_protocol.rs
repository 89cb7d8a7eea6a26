//! The push protocol's messages (`design/contracts.md`, `/api/push/{name}`), parsed and checked:
//! every refusal says what was wrong, for the producer's developer to read in the close reason.
//!
//! - Text `hello` first: `{"type":"hello","audio":{"rate":24000,"channels":1,"format":"s16le"},
//!   "video":{"width":512,"height":512,"format":"i420","fps":30},"clock_us":123}` (either part
//!   may be absent; `clock_us`, the producer's clock now, lets its stamps be mapped exactly).
//! - Binary media: byte 0 kind (`1` audio, `2` video), bytes 1–8 capture time in µs on the
//!   producer's monotonic clock (big-endian i64; `i64::MIN` = unstamped), then the payload.
//! - Text controls: `{"type":"flush"}`, `{"type":"end"}`, `{"type":"clock","clock_us":N}` (the
//!   producer's clock now, about once a second: lockstep follows a clock that runs off ours).

use std::time::Duration;

use lockstep_media::{PcmFormat, SampleFormat};
use lockstep_sync::{LocalInstant, ProducerClock};
use serde::Deserialize;

/// A capture time further than this from the producer's mapped "now" is refused: a clock that
/// jumped, or a unit mistake (ms, ns), not media to hold for a day.
pub const MAX_CAPTURE_SKEW: Duration = Duration::from_secs(3600);

/// Timestamp meaning "no capture time: use arrival".
pub const UNSTAMPED: i64 = i64::MIN;
const HEADER_BYTES: usize = 9;
pub const KIND_AUDIO: u8 = 1;
pub const KIND_VIDEO: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    I420,
    Rgb24,
    H264,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoDeclaration {
    pub width: usize,
    pub height: usize,
    pub format: VideoFormat,
    pub fps: u32,
}

impl VideoDeclaration {
    /// The exact size of one raw frame, `None` for H.264.
    pub fn frame_bytes(&self) -> Option<usize> {
        let pixels = self.width * self.height;
        match self.format {
            VideoFormat::I420 => Some(pixels * 3 / 2),
            VideoFormat::Rgb24 => Some(pixels * 3),
            VideoFormat::H264 => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub audio: Option<PcmFormat>,
    pub video: Option<VideoDeclaration>,
    pub clock_us: Option<i64>,
}

impl Hello {
    /// The largest message this producer may send (a raw frame, or 2 s of audio, or an H.264
    /// access unit of up to 4 MB), plus the header.
    pub fn max_message_bytes(&self) -> usize {
        let audio = self.audio.map_or(0, |a| {
            a.rate_hz as usize * 2 * usize::from(a.channels) * a.sample.bytes()
        });
        let video = self.video.map_or(0, |v| v.frame_bytes().unwrap_or(4 << 20));
        audio.max(video).max(4096) + HEADER_BYTES
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHello {
    #[serde(rename = "type")]
    kind: String,
    audio: Option<RawAudio>,
    video: Option<RawVideo>,
    clock_us: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudio {
    rate: u32,
    #[serde(default = "one")]
    channels: u16,
    #[serde(default = "s16le")]
    format: String,
}

fn one() -> u16 {
    1
}
fn s16le() -> String {
    "s16le".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVideo {
    width: usize,
    height: usize,
    format: String,
    #[serde(default = "thirty")]
    fps: u32,
}

fn thirty() -> u32 {
    30
}

pub fn parse_hello(text: &str) -> Result<Hello, String> {
    let raw: RawHello =
        serde_json::from_str(text).map_err(|e| format!("the hello is not valid: {e}"))?;
    if raw.kind != "hello" {
        return Err(format!(
            "the first message must be {{\"type\":\"hello\",…}}, not type {:?}",
            raw.kind
        ));
    }
    let audio = raw.audio.map(check_audio).transpose()?;
    let video = raw.video.map(check_video).transpose()?;
    if audio.is_none() && video.is_none() {
        return Err("the hello declares neither audio nor video".into());
    }
    Ok(Hello {
        audio,
        video,
        clock_us: raw.clock_us,
    })
}

fn check_audio(a: RawAudio) -> Result<PcmFormat, String> {
    if !(8_000..=192_000).contains(&a.rate) {
        return Err(format!("audio.rate {} is not 8000 to 192000 Hz", a.rate));
    }
    if !(1..=8).contains(&a.channels) {
        return Err(format!("audio.channels {} is not 1 to 8", a.channels));
    }
    let sample = match a.format.as_str() {
        "s16le" => SampleFormat::S16le,
        "f32le" => SampleFormat::F32le,
        other => return Err(format!("audio.format {other:?} is not s16le or f32le")),
    };
    Ok(PcmFormat {
        rate_hz: a.rate,
        channels: a.channels,
        sample,
    })
}

fn check_video(v: RawVideo) -> Result<VideoDeclaration, String> {
    let format = match v.format.as_str() {
        "i420" => VideoFormat::I420,
        "rgb24" => VideoFormat::Rgb24,
        "h264" => VideoFormat::H264,
        other => return Err(format!("video.format {other:?} is not i420, rgb24 or h264")),
    };
    if !(16..=4096).contains(&v.width) || !(16..=4096).contains(&v.height) {
        return Err(format!(
            "video size {}x{} is not 16 to 4096 pixels each way",
            v.width, v.height
        ));
    }
    if format != VideoFormat::H264 && (v.width % 2 != 0 || v.height % 2 != 0) {
        return Err(format!(
            "video size {}x{} must be even for {}",
            v.width, v.height, v.format
        ));
    }
    if !(1..=120).contains(&v.fps) {
        return Err(format!("video.fps {} is not 1 to 120", v.fps));
    }
    Ok(VideoDeclaration {
        width: v.width,
        height: v.height,
        format,
        fps: v.fps,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Flush,
    End,
    /// The producer's clock reads this many µs now.
    Clock {
        clock_us: i64,
    },
}

pub fn parse_control(text: &str) -> Result<Control, String> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "type")]
        kind: String,
        clock_us: Option<i64>,
    }
    let raw: Raw = serde_json::from_str(text)
        .map_err(|e| format!("a text message must be a JSON control: {e}"))?;
    match raw.kind.as_str() {
        "flush" => Ok(Control::Flush),
        "end" => Ok(Control::End),
        "clock" => match raw.clock_us {
            Some(clock_us) if clock_us != UNSTAMPED => Ok(Control::Clock { clock_us }),
            _ => Err("a clock control needs \"clock_us\": the producer's clock now in µs".into()),
        },
        "hello" => Err("hello was already received".into()),
        other => Err(format!("unknown control {other:?} (flush, end or clock)")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

/// One binary message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media<'a> {
    pub kind: MediaKind,
    /// Capture time in µs on the producer's clock, `None` when unstamped.
    pub capture_us: Option<i64>,
    pub payload: &'a [u8],
}

/// Parses a binary message against what the hello declared.
pub fn parse_media<'a>(bytes: &'a [u8], hello: &Hello) -> Result<Media<'a>, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "a media message needs a 9-byte header (kind, capture µs), got {} bytes",
            bytes.len()
        ));
    }
    let kind = match bytes[0] {
        KIND_AUDIO if hello.audio.is_some() => MediaKind::Audio,
        KIND_VIDEO if hello.video.is_some() => MediaKind::Video,
        KIND_AUDIO => return Err("audio sent, but the hello declared none".into()),
        KIND_VIDEO => return Err("video sent, but the hello declared none".into()),
        other => return Err(format!("media kind {other} is not 1 (audio) or 2 (video)")),
    };
    let mut stamp = [0u8; 8];
    stamp.copy_from_slice(&bytes[1..HEADER_BYTES]);
    let stamp = i64::from_be_bytes(stamp);
    let payload = &bytes[HEADER_BYTES..];
    if payload.is_empty() {
        return Err("an empty media message".into());
    }
    if kind == MediaKind::Video {
        if let Some(expected) = hello.video.and_then(|v| v.frame_bytes()) {
            if payload.len() != expected {
                return Err(format!(
                    "a video frame of {} bytes; the declared raw format needs {expected}",
                    payload.len()
                ));
            }
        }
    }
    Ok(Media {
        kind,
        capture_us: (stamp != UNSTAMPED).then_some(stamp),
        payload,
    })
}

/// Maps the producer's capture times (µs on its monotonic clock) onto the local clock through
/// the sync core's [`ProducerClock`]: fed by the hello's `clock_us` and every `clock` control
/// (else by the first stamped message alone). Everything goes out `delay` after its capture.
#[derive(Debug, Clone)]
pub struct CaptureClock {
    clock: ProducerClock,
}

impl CaptureClock {
    pub fn new(delay: Duration, hello_clock_us: Option<i64>, hello_at: LocalInstant) -> Self {
        let mut clock = ProducerClock::new(delay);
        if let Some(clock_us) = hello_clock_us {
            clock.handle_clock(hello_at, clock_us);
        }
        CaptureClock { clock }
    }

    /// The producer's clock read `clock_us` when a message that arrived at `arrived` was sent.
    pub fn handle_clock(&mut self, clock_us: i64, arrived: LocalInstant) {
        self.clock.handle_clock(arrived, clock_us);
    }

    /// When something captured at `capture` (local clock) goes out.
    pub fn output(&self, capture: LocalInstant) -> LocalInstant {
        capture.add_nanos(i64::try_from(self.clock.playout_delay().as_nanos()).unwrap_or(0))
    }

    /// The producer-clock µs of what goes out at `out`, once the mapping is known.
    pub fn producer_us(&self, out: LocalInstant) -> Option<i64> {
        self.clock.producer_us(out)
    }

    /// The mapping itself (drift, jitter, samples).
    pub fn producer(&self) -> &ProducerClock {
        &self.clock
    }

    /// When media captured at `capture_us` (producer clock; `None`: now) goes out, or why not.
    /// Without a clock reading yet, the first stamp is taken as the producer's now.
    pub fn due(
        &mut self,
        capture_us: Option<i64>,
        arrived: LocalInstant,
    ) -> Result<LocalInstant, String> {
        let Some(stamp) = capture_us else {
            return Ok(self.output(arrived));
        };
        if !self.clock.is_known() {
            self.clock.handle_clock(arrived, stamp);
        }
        let capture = self
            .clock
            .capture_time(stamp)
            .filter(|c| c.nanos_since(arrived).unsigned_abs() <= MAX_CAPTURE_SKEW.as_nanos() as u64)
            .ok_or_else(|| {
                format!(
                    "capture time {stamp} µs is more than {} s from the producer's now: stamps \
                     are µs on one monotonic clock",
                    MAX_CAPTURE_SKEW.as_secs()
                )
            })?;
        Ok(self.output(capture))
    }
}

/// A media message as a producer writes it (the simulator, tests).
pub fn encode_media(kind: u8, capture_us: Option<i64>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.push(kind);
    out.extend_from_slice(&capture_us.unwrap_or(UNSTAMPED).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = r#"{"type":"hello","audio":{"rate":24000,"channels":1,"format":"s16le"},"video":{"width":512,"height":512,"format":"i420","fps":30}}"#;

    #[test]
    fn the_contract_hello_parses() {
        let hello = parse_hello(HELLO).unwrap();
        assert_eq!(hello.audio.unwrap().rate_hz, 24_000);
        let video = hello.video.unwrap();
        assert_eq!((video.width, video.height, video.fps), (512, 512, 30));
        assert_eq!(video.frame_bytes(), Some(512 * 512 * 3 / 2));
        assert!(hello.max_message_bytes() >= 512 * 512 * 3 / 2 + 9);
        let audio_only = parse_hello(r#"{"type":"hello","audio":{"rate":16000}}"#).unwrap();
        assert!(audio_only.video.is_none());
    }

    #[test]
    fn bad_hellos_say_what_is_wrong() {
        for (text, says) in [
            ("not json", "not valid"),
            (r#"{"type":"flush"}"#, "must be"),
            (r#"{"type":"hello"}"#, "neither"),
            (r#"{"type":"hello","audio":{"rate":1}}"#, "audio.rate 1"),
            (
                r#"{"type":"hello","audio":{"rate":8000,"format":"u8"}}"#,
                "\"u8\"",
            ),
            (
                r#"{"type":"hello","audio":{"rate":8000,"channels":0}}"#,
                "channels 0",
            ),
            (
                r#"{"type":"hello","video":{"width":511,"height":512,"format":"i420"}}"#,
                "even",
            ),
            (
                r#"{"type":"hello","video":{"width":512,"height":512,"format":"vp8"}}"#,
                "\"vp8\"",
            ),
            (
                r#"{"type":"hello","video":{"width":512,"height":512,"format":"i420","fps":0}}"#,
                "fps 0",
            ),
            (
                r#"{"type":"hello","audio":{"rate":8000},"extra":1}"#,
                "extra",
            ),
        ] {
            let err = parse_hello(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn media_messages_round_trip_and_bad_ones_are_refused() {
        let hello = parse_hello(HELLO).unwrap();
        let audio = encode_media(KIND_AUDIO, Some(-5), &[1, 2, 3, 4]);
        let m = parse_media(&audio, &hello).unwrap();
        assert_eq!(
            (m.kind, m.capture_us, m.payload),
            (MediaKind::Audio, Some(-5), &[1u8, 2, 3, 4][..])
        );
        let unstamped = encode_media(KIND_AUDIO, None, &[0, 0]);
        assert_eq!(parse_media(&unstamped, &hello).unwrap().capture_us, None);
        for (bytes, says) in [
            (vec![1, 0, 0], "9-byte header"),
            (encode_media(3, None, &[0]), "kind 3"),
            (encode_media(KIND_AUDIO, None, &[]), "empty"),
            (encode_media(KIND_VIDEO, None, &[0; 100]), "100 bytes"),
        ] {
            let err = parse_media(&bytes, &hello).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
        let audio_only = parse_hello(r#"{"type":"hello","audio":{"rate":16000}}"#).unwrap();
        let err = parse_media(&encode_media(KIND_VIDEO, None, &[0]), &audio_only).unwrap_err();
        assert!(err.contains("declared none"), "{err}");
    }

    #[test]
    fn capture_times_map_once_and_wild_ones_are_refused() {
        let hello_at = LocalInstant::from_millis(10_000);
        let mut clock = CaptureClock::new(Duration::from_millis(50), Some(1_000), hello_at);
        // The producer's 1 000 µs is the hello's arrival: 1 s later on its clock → 1 s + 50 ms.
        let due = clock
            .due(Some(1_001_000), LocalInstant::from_millis(11_003))
            .unwrap();
        assert_eq!(due, LocalInstant::from_millis(11_050));
        assert_eq!(
            clock.due(None, hello_at).unwrap(),
            LocalInstant::from_millis(10_050)
        );
        for wild in [i64::MIN + 1, i64::MAX, 5_000_000_000 + 1_000] {
            let err = clock.due(Some(wild), hello_at).unwrap_err();
            assert!(err.contains("monotonic"), "{err}");
        }
        assert_eq!(
            clock.producer_us(LocalInstant::from_millis(11_050)),
            Some(1_001_000)
        );
        // Without clock_us, the first stamp maps to its arrival.
        let mut clock = CaptureClock::new(Duration::ZERO, None, hello_at);
        assert_eq!(clock.due(Some(-7), hello_at).unwrap(), hello_at);
        assert_eq!(
            clock.due(Some(i64::MIN + 1), hello_at).map_err(|_| ()),
            Err(())
        );
    }

    #[test]
    fn controls() {
        assert_eq!(parse_control(r#"{"type":"flush"}"#), Ok(Control::Flush));
        assert_eq!(parse_control(r#"{"type":"end"}"#), Ok(Control::End));
        assert!(parse_control(r#"{"type":"dance"}"#)
            .unwrap_err()
            .contains("dance"));
        assert!(parse_control("{").is_err());
        assert_eq!(
            parse_control(r#"{"type":"clock","clock_us":42}"#),
            Ok(Control::Clock { clock_us: 42 })
        );
        assert!(parse_control(r#"{"type":"clock"}"#)
            .unwrap_err()
            .contains("clock_us"));
    }
}
