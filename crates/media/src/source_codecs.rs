//! The codec work a [`Source`](lockstep_sync::Source) hands out, for every source kind: RTP
//! payloads of a camera (H.264 depacketized, with the SDP's parameter sets put in front of
//! keyframes that come without them; G.711, L16 decoded) and a WebRTC publisher's frames (H.264
//! access units passed on, Opus decoded).

use std::sync::Arc;

use lockstep_sync::{AudioChunk, AudioDecode, Source, VideoAssemble, VideoPacket, VideoUnit};

use crate::h264::{split_annex_b, with_parameter_sets, H264Depacketizer, NAL_IDR};
use crate::AudioDecoder;

/// A source with lockstep's codecs: H.264 video, decoded audio.
pub type MediaSource = Source<MediaPayload, AudioTrackDecoder, H264Track>;

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

/// An audio track's decoder as a source stage.
#[derive(Debug)]
pub struct AudioTrackDecoder {
    decoder: AudioDecoder,
}

impl AudioTrackDecoder {
    pub fn new(decoder: AudioDecoder) -> Self {
        AudioTrackDecoder { decoder }
    }
}

impl AudioDecode<MediaPayload> for AudioTrackDecoder {
    type Chunk = Pcm;
    fn decode(&mut self, payload: MediaPayload) -> Option<Pcm> {
        let data = payload.data();
        let mut pcm = Vec::with_capacity(data.len());
        // A bad payload is lost audio: the retimer conceals it.
        self.decoder.decode_first_channel(data, 1, &mut pcm).ok()?;
        (!pcm.is_empty()).then_some(Pcm(pcm))
    }
}

/// An H.264 track as a source stage, from RTP packets or from whole access units.
#[derive(Debug, Default)]
pub struct H264Track {
    depacketizer: H264Depacketizer,
    /// The SDP's SPS and PPS, for cameras that send them only there (not before each IDR).
    parameter_sets: Option<(Vec<u8>, Vec<u8>)>,
    /// Frames after a gap: passed on only from the next keyframe (the reference chain broke).
    need_keyframe: bool,
}

impl H264Track {
    pub fn new(parameter_sets: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        H264Track {
            parameter_sets,
            need_keyframe: true,
            ..H264Track::default()
        }
    }
}

impl VideoAssemble<MediaPayload> for H264Track {
    type Frame = Vec<u8>;

    fn push(&mut self, packet: VideoPacket<MediaPayload>) -> Option<VideoUnit<Vec<u8>>> {
        let (annex_b, keyframe) = match packet.payload {
            MediaPayload::Rtp { data, marker } => {
                let unit = self.depacketizer.push(&data, marker)?;
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
                let keyframe = keyframe
                    || split_annex_b(&data)
                        .iter()
                        .any(|nal| nal.first().is_some_and(|b| b & 0x1f == NAL_IDR));
                if self.need_keyframe && !keyframe {
                    return None;
                }
                self.need_keyframe = false;
                (data.to_vec(), keyframe)
            }
        };
        let annex_b = match &self.parameter_sets {
            Some((sps, pps)) if keyframe => with_parameter_sets(annex_b, sps, pps),
            _ => annex_b,
        };
        Some(VideoUnit {
            capture: packet.capture,
            keyframe,
            frame: annex_b,
        })
    }

    fn handle_loss(&mut self) {
        self.depacketizer.handle_loss();
    }

    fn reset(&mut self) {
        self.depacketizer = H264Depacketizer::default();
        self.need_keyframe = true;
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
        let mut track = H264Track::new(None);
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
    fn rtp_single_nal_units_pass_with_the_sdp_parameter_sets() {
        let mut track = H264Track::new(Some((vec![0x67, 1], vec![0x68, 2])));
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
