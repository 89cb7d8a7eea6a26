//! H.264 encoding and decoding with the bundled OpenH264 (built from source by `cc`).

use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, QpRange,
    RateControlMode, UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};
use openh264::OpenH264API;

use crate::h264::split_annex_b;
use crate::pattern::I420Frame;

/// An OpenH264 failure, with what we were doing.
#[derive(Debug, thiserror::Error)]
#[error("H.264 {action} failed: {source}")]
pub struct CodecError {
    action: &'static str,
    #[source]
    source: openh264::Error,
}

/// One encoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// NAL units without start codes (SPS and PPS lead every IDR).
    pub nals: Vec<Vec<u8>>,
    pub keyframe: bool,
}

/// A camera-like H.264 encoder: constrained baseline, constant frame rate, fixed GOP.
pub struct H264Encoder {
    inner: Encoder,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H264Encoder")
    }
}

impl H264Encoder {
    pub fn new(fps: u32, bitrate_bps: u32, gop_frames: u32) -> Result<Self, CodecError> {
        // Rate control that never skips a frame: a camera sends every frame at a constant rate
        // (OpenH264's bitrate modes skip frames under pressure, or warn when told not to).
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Off)
            .qp(QpRange::new(20, 32))
            .bitrate(BitRate::from_bps(bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .intra_frame_period(IntraFramePeriod::from_num_frames(gop_frames))
            .skip_frames(false)
            .num_threads(1);
        let inner =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|source| {
                CodecError {
                    action: "encoder set-up",
                    source,
                }
            })?;
        Ok(H264Encoder { inner })
    }

    pub fn encode(&mut self, frame: &I420Frame) -> Result<EncodedFrame, CodecError> {
        let (w, h) = (frame.width, frame.height);
        let source = YUVSlices::new((frame.y(), frame.u(), frame.v()), (w, h), (w, w / 2, w / 2));
        let stream = self.inner.encode(&source).map_err(|source| CodecError {
            action: "encode",
            source,
        })?;
        let keyframe = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        let annex_b = stream.to_vec();
        let nals = split_annex_b(&annex_b)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        Ok(EncodedFrame { nals, keyframe })
    }

    /// The next frame will be an IDR (a new viewer, a reboot).
    pub fn force_keyframe(&mut self) {
        self.inner.force_intra_frame();
    }
}

/// A decoded picture's luma plane, copied out of the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedLuma {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub y: Vec<u8>,
}

/// Decodes H.264 access units (Annex B) to luma: all the pattern analysis needs.
pub struct H264Decoder {
    inner: Decoder,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H264Decoder")
    }
}

impl H264Decoder {
    pub fn new() -> Result<Self, CodecError> {
        let inner = Decoder::new().map_err(|source| CodecError {
            action: "decoder set-up",
            source,
        })?;
        Ok(H264Decoder { inner })
    }

    /// Decodes one access unit; `Ok(None)` while the decoder has no picture yet.
    pub fn decode(&mut self, annex_b: &[u8]) -> Result<Option<DecodedLuma>, CodecError> {
        let picture = self.inner.decode(annex_b).map_err(|source| CodecError {
            action: "decode",
            source,
        })?;
        Ok(picture.map(|p| {
            let (width, height) = p.dimensions();
            let stride = p.strides().0;
            DecodedLuma {
                width,
                height,
                stride,
                y: p.y()[..stride * height].to_vec(),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{mean_luma_below_stripe, read_stripe, StripeData};

    #[test]
    fn the_pattern_survives_encoding_and_decoding() {
        let mut encoder = H264Encoder::new(30, 1_000_000, 60).unwrap();
        let mut decoder = H264Decoder::new().unwrap();
        let mut frame = I420Frame::new(320, 240);
        for i in 0..40u32 {
            let data = StripeData {
                frame_index: i,
                capture_unix_micros: Some(1_763_800_000_000_000 + u64::from(i) * 33_333),
            };
            frame.draw(i % 30 == 0, data);
            let encoded = encoder.encode(&frame).unwrap();
            assert_eq!(encoded.keyframe, i == 0, "frame {i}");
            let luma = decoder
                .decode(&crate::h264::annex_b(&encoded.nals))
                .unwrap()
                .expect("a picture per frame");
            assert_eq!(
                read_stripe(&luma.y, luma.stride, luma.width, luma.height),
                Some(data)
            );
            let mean = mean_luma_below_stripe(&luma.y, luma.stride, luma.width, luma.height);
            assert_eq!(mean > 128.0, i % 30 == 0, "frame {i}: mean {mean}");
        }
    }
}
