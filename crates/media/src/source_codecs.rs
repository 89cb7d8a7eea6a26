//! The codec work a [`Source`](lockstep_sync::Source) hands out, for every source kind: RTP
//! payloads of a camera (H.264 or H.265 depacketized, with the SDP's parameter sets put in front of
//! keyframes that come without them; G.711, L16 decoded) and a WebRTC publisher's frames (H.264
//! access units passed on, Opus decoded).

use std::sync::Arc;

use lockstep_sync::{AudioChunk, AudioDecode, Source, VideoAssemble, VideoPacket, VideoUnit};

use crate::aac_rtp::{AacDepacketizer, AacTrackFormat};
use crate::g711::G711Law;
use crate::h264::{self, split_annex_b, H264Depacketizer};
use crate::h265::{self, H265Depacketizer};
use crate::{AudioDecoder, Codec};

/// A source with lockstep's codecs: H.264 or H.265 video, decoded audio.
pub type MediaSource = Source<MediaPayload, AudioTrackDecoder, VideoTrack>;

/// What a source's jitter buffer holds, whatever the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaPayload {
    /// One RTP payload and its marker bit (a camera).
    Rtp { data: Vec<u8>, marker: bool },
    /// One depacketized frame (a WebRTC publisher): an H.264 access unit in Annex B or an
    /// Opus packet. `contiguous` is false after a gap in the sender's sequence.
    Frame {
        data: Arc<[u8]>,
        keyframe: bool,
        contiguous: bool,
    },
}

impl MediaPayload {
    fn data(&self) -> &[u8] {
        match self {
            MediaPayload::Rtp { data, .. } => data,
            MediaPayload::Frame { data, .. } => data,
        }
    }
}

/// Decoded mono PCM (the first channel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pcm(pub Vec<i16>);

impl AudioChunk for Pcm {
    fn samples(&self) -> u32 {
        self.0.len() as u32
    }
    fn skip_front(&mut self, samples: u32) {
        let n = (samples as usize).min(self.0.len());
        self.0.drain(..n);
    }
}

/// An audio track's decoder as a source stage: RTP payloads (AAC depacketized first) or
/// whole frames in, PCM out.
#[derive(Debug)]
pub struct AudioTrackDecoder {
    decoder: AudioDecoder,
    aac: Option<AacDepacketizer>,
    /// Decoded samples lag the packets' timestamps by this many (an AAC encoder's priming).
    delay_samples: u32,
    aus: Vec<Vec<u8>>,
}

/// A camera's audio track: its codec, decoder and RTP clock rate.
#[derive(Debug)]
pub struct RtpAudioTrack {
    pub codec: Codec,
    pub rate_hz: u32,
    pub decoder: AudioTrackDecoder,
}

impl AudioTrackDecoder {
    pub fn new(decoder: AudioDecoder) -> Self {
        AudioTrackDecoder {
            decoder,
            aac: None,
            delay_samples: 0,
            aus: Vec::new(),
        }
    }

    /// The decoder of an RTP audio track from its SDP (`rtpmap` encoding name any case, clock
    /// rate and channels, the `fmtp` parameters): `None` if lockstep does not know the
    /// encoding, `Err` with the reason a known one cannot be read.
    pub fn for_rtp(
        encoding_name: &str,
        clock_rate_hz: u32,
        channels: u8,
        fmtp: &str,
    ) -> Option<Result<RtpAudioTrack, String>> {
        let track = |codec, decoder| -> Result<RtpAudioTrack, String> {
            Ok(RtpAudioTrack {
                codec,
                rate_hz: clock_rate_hz,
                decoder: AudioTrackDecoder::new(decoder),
            })
        };
        if let Some(aac) = AacTrackFormat::from_sdp(encoding_name, fmtp) {
            return Some(aac.and_then(|format| {
                if format.config.sample_rate_hz != clock_rate_hz {
                    return Err(format!(
                        "the AAC track's RTP clock ({clock_rate_hz} Hz) is not its sample rate \
                         ({} Hz)",
                        format.config.sample_rate_hz
                    ));
                }
                let decoder = AudioDecoder::aac(
                    &format.config.audio_specific_config,
                    format.config.sample_rate_hz,
                )
                .map_err(|e| e.to_string())?;
                let mut track = track(Codec::Aac, decoder)?;
                track.decoder.aac = Some(AacDepacketizer::new(format.payload));
                // Encoders prime one frame: its samples are played as audio by a receiver that
                // does not know, one frame late (+64 ms at 16 kHz).
                track.decoder.delay_samples = format.config.frame_samples;
                Ok(track)
            }));
        }
        let codec = Codec::from_encoding_name(encoding_name)?;
        Some(match codec {
            Codec::Pcma => track(codec, AudioDecoder::G711(G711Law::ALaw)),
            Codec::Pcmu => track(codec, AudioDecoder::G711(G711Law::MuLaw)),
            Codec::L16 => track(codec, AudioDecoder::Pcm16 { big_endian: true }),
            Codec::Opus if clock_rate_hz == OPUS_RTP_RATE_HZ => AudioDecoder::opus(channels)
                .map_err(|e| e.to_string())
                .and_then(|d| track(codec, d)),
            Codec::Opus => Err(format!(
                "an Opus track must run a 48 kHz RTP clock, not {clock_rate_hz} Hz"
            )),
            _ => return None,
        })
    }
}

/// RFC 7587: Opus RTP timestamps count 48 kHz whatever the coded bandwidth.
const OPUS_RTP_RATE_HZ: u32 = 48_000;

impl AudioDecode<MediaPayload> for AudioTrackDecoder {
    type Chunk = Pcm;
    fn decode(&mut self, payload: MediaPayload) -> Option<Pcm> {
        let mut pcm = Vec::new();
        if let (Some(aac), MediaPayload::Rtp { data, marker }) = (&mut self.aac, &payload) {
            // A malformed packet is lost audio: the retimer conceals it.
            aac.push(data, *marker, &mut self.aus).ok()?;
            for au in self.aus.drain(..) {
                // A frame that does not decode is lost; the others in the packet still play.
                let _ = self.decoder.decode_first_channel(&au, 1, &mut pcm);
            }
        } else {
            let data = payload.data();
            pcm.reserve(data.len());
            self.decoder.decode_first_channel(data, 1, &mut pcm).ok()?;
        }
        (!pcm.is_empty()).then_some(Pcm(pcm))
    }

    fn handle_loss(&mut self) {
        if let Some(aac) = &mut self.aac {
            aac.handle_loss();
        }
    }

    fn delay_samples(&self) -> u32 {
        self.delay_samples
    }
}

/// A video track as a source stage, from RTP packets or from whole access units: H.264
/// (RFC 6184) or H.265 (RFC 7798), both handed on as Annex B access units.
#[derive(Debug)]
pub struct VideoTrack {
    codec: Codec,
    depacketizer: Depacketizer,
    /// The SDP's parameter sets (SPS, PPS; H.265 also VPS), for cameras that send them only
    /// there (not before each keyframe).
    parameter_sets: Vec<Vec<u8>>,
    /// Frames after a gap: passed on only from the next keyframe (the reference chain broke).
    need_keyframe: bool,
}

#[derive(Debug)]
enum Depacketizer {
    H264(H264Depacketizer),
    H265(H265Depacketizer),
}

impl VideoTrack {
    /// `codec` must be a video codec; anything else is read as H.264.
    pub fn new(codec: Codec, parameter_sets: Vec<Vec<u8>>) -> Self {
        let (codec, depacketizer) = match codec {
            Codec::H265 => (codec, Depacketizer::H265(H265Depacketizer::default())),
            _ => (Codec::H264, Depacketizer::H264(H264Depacketizer::default())),
        };
        VideoTrack {
            codec,
            depacketizer,
            parameter_sets,
            need_keyframe: true,
        }
    }

    /// An H.264 track (push producers, WHIP publishers, the simulator).
    pub fn h264(sps_pps: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        let sets = sps_pps.map_or_else(Vec::new, |(sps, pps)| vec![sps, pps]);
        VideoTrack::new(Codec::H264, sets)
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The NAL unit is a keyframe's (IDR for H.264, an intra random access point for H.265).
    fn is_keyframe_nal(&self, nal: &[u8]) -> bool {
        match self.codec {
            Codec::H265 => h265::is_keyframe_nal(h265::nal_type(nal)),
            _ => h264::nal_type(nal) == h264::NAL_IDR,
        }
    }

    /// A keyframe with the SDP's parameter sets in front when it came without them: a decoder
    /// joining at this keyframe — a browser, a recording segment — needs them in the stream.
    fn with_parameter_sets(&self, annex_b: Vec<u8>) -> Vec<u8> {
        let is_sps = |nal: &[u8]| match self.codec {
            Codec::H265 => h265::nal_type(nal) == h265::NAL_SPS,
            _ => h264::nal_type(nal) == h264::NAL_SPS,
        };
        if self.parameter_sets.is_empty() || split_annex_b(&annex_b).iter().any(|n| is_sps(n)) {
            return annex_b;
        }
        let mut out = h264::annex_b(&self.parameter_sets);
        out.extend_from_slice(&annex_b);
        out
    }
}

impl VideoAssemble<MediaPayload> for VideoTrack {
    type Frame = Vec<u8>;

    fn push(&mut self, packet: VideoPacket<MediaPayload>) -> Option<VideoUnit<Vec<u8>>> {
        let (annex_b, keyframe) = match packet.payload {
            MediaPayload::Rtp { data, marker } => {
                let unit = match &mut self.depacketizer {
                    Depacketizer::H264(d) => d.push(&data, marker),
                    Depacketizer::H265(d) => d.push(&data, marker),
                }?;
                (unit.annex_b, unit.keyframe)
            }
            MediaPayload::Frame {
                data,
                keyframe,
                contiguous,
            } => {
                if !contiguous {
                    self.need_keyframe = true;
                }
                let keyframe =
                    keyframe || split_annex_b(&data).iter().any(|n| self.is_keyframe_nal(n));
                if self.need_keyframe && !keyframe {
                    return None;
                }
                self.need_keyframe = false;
                (data.to_vec(), keyframe)
            }
        };
        let annex_b = if keyframe {
            self.with_parameter_sets(annex_b)
        } else {
            annex_b
        };
        Some(VideoUnit {
            capture: packet.capture,
            keyframe,
            frame: annex_b,
        })
    }

    fn handle_loss(&mut self) {
        match &mut self.depacketizer {
            Depacketizer::H264(d) => d.handle_loss(),
            Depacketizer::H265(d) => d.handle_loss(),
        }
    }

    fn reset(&mut self) {
        *self = VideoTrack::new(self.codec, std::mem::take(&mut self.parameter_sets));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_sync::LocalInstant;

    fn frame(data: &[u8], keyframe: bool, contiguous: bool) -> VideoPacket<MediaPayload> {
        VideoPacket {
            ts_ext: 0,
            capture: LocalInstant::ZERO,
            payload: MediaPayload::Frame {
                data: Arc::from(data),
                keyframe,
                contiguous,
            },
        }
    }

    #[test]
    fn frames_after_a_gap_wait_for_a_keyframe() {
        let mut track = VideoTrack::h264(None);
        let delta = [0, 0, 0, 1, 0x41, 7];
        let idr = [0, 0, 0, 1, 0x65, 7];
        assert!(
            track.push(frame(&delta, false, true)).is_none(),
            "no keyframe yet"
        );
        assert!(
            track.push(frame(&idr, false, true)).unwrap().keyframe,
            "IDR seen in-band"
        );
        assert!(track.push(frame(&delta, false, true)).is_some());
        assert!(
            track.push(frame(&delta, false, false)).is_none(),
            "after a gap"
        );
        assert!(track.push(frame(&idr, true, true)).is_some());
    }

    #[test]
    fn in_band_parameter_sets_win_over_the_sdp_ones() {
        let mut track = VideoTrack::h264(Some((vec![0x67, 1], vec![0x68, 2])));
        let in_band = [
            0, 0, 0, 1, 0x67, 7, 0, 0, 0, 1, 0x68, 8, 0, 0, 0, 1, 0x65, 9,
        ];
        let unit = track.push(frame(&in_band, true, true)).unwrap();
        assert_eq!(unit.frame, in_band, "nothing added");
    }

    #[test]
    fn an_h265_keyframe_gets_the_sdp_vps_sps_pps_in_front() {
        let sets = vec![
            vec![0x40, 0x01, 1],
            vec![0x42, 0x01, 2],
            vec![0x44, 0x01, 3],
        ];
        let mut track = VideoTrack::new(Codec::H265, sets.clone());
        let mut payloads = Vec::new();
        let cra = [0x2a, 0x01, 5, 6, 7]; // type 21, CRA
        h265::packetize(&[&cra], 3, &mut payloads);
        let count = payloads.len();
        let mut unit = None;
        for (i, data) in payloads.into_iter().enumerate() {
            unit = track.push(VideoPacket {
                ts_ext: 0,
                capture: LocalInstant::ZERO,
                payload: MediaPayload::Rtp {
                    data,
                    marker: i + 1 == count,
                },
            });
        }
        let unit = unit.expect("the marker ends the unit");
        assert!(unit.keyframe);
        let nals = split_annex_b(&unit.frame);
        assert_eq!(nals[..3], [&sets[0][..], &sets[1][..], &sets[2][..]]);
        assert_eq!(nals[3], cra);
        // A trailing picture is not a keyframe and gets nothing.
        let trail = track.push(VideoPacket {
            ts_ext: 0,
            capture: LocalInstant::ZERO,
            payload: MediaPayload::Rtp {
                data: vec![0x02, 0x01, 9],
                marker: true,
            },
        });
        assert!(trail.is_some_and(|u| !u.keyframe && u.frame == [0, 0, 0, 1, 0x02, 0x01, 9]));
    }

    #[test]
    fn rtp_single_nal_units_pass_with_the_sdp_parameter_sets() {
        let mut track = VideoTrack::h264(Some((vec![0x67, 1], vec![0x68, 2])));
        let unit = track
            .push(VideoPacket {
                ts_ext: 0,
                capture: LocalInstant::from_millis(5),
                payload: MediaPayload::Rtp {
                    data: vec![0x65, 9],
                    marker: true,
                },
            })
            .unwrap();
        assert!(unit.keyframe);
        assert_eq!(unit.capture, LocalInstant::from_millis(5));
        let nals = split_annex_b(&unit.frame);
        assert_eq!(nals, vec![&[0x67, 1][..], &[0x68, 2][..], &[0x65, 9][..]]);
    }
}
