//! Reads the beep-flash pattern out of encoded pictures and decoded sound, with their presentation
//! times: what `lockstep measure` and the ingest tests and benchmarks share.

use crate::beep_flash::{analyze, BeepDetector, PictureObservation, SyncReport};
use crate::picture_reader::PictureReader;
use crate::{Codec, CodecError};

#[derive(Debug)]
pub struct PatternReader {
    pictures: PictureReader<f64>,
    beeps: BeepDetector,
}

impl PatternReader {
    /// A reader of H.264 video.
    pub fn new(audio_rate_hz: u32) -> Result<Self, CodecError> {
        PatternReader::with_codec(Codec::H264, audio_rate_hz)
    }

    pub fn with_codec(video: Codec, audio_rate_hz: u32) -> Result<Self, CodecError> {
        Ok(PatternReader {
            pictures: PictureReader::new(video)?,
            beeps: BeepDetector::new(audio_rate_hz),
        })
    }

    /// Decodes an access unit presented at `presented_secs`; its observation when it is decoded
    /// at once (H.264). Parameter sets alone are fine: they prime the decoder.
    pub fn video(&mut self, presented_secs: f64, annex_b: &[u8]) -> Option<&PictureObservation> {
        self.pictures
            .push(presented_secs, annex_b)
            .map(|(_, picture)| picture)
    }

    /// Sound in [-1, 1] whose first sample is presented at `first_secs`.
    pub fn audio(&mut self, first_secs: f64, samples: &[f32]) {
        self.beeps.push(first_secs, samples);
    }

    /// 16-bit sound whose first sample is presented at `first_secs`.
    pub fn audio_i16(&mut self, first_secs: f64, pcm: &[i16]) {
        let samples: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32_768.0).collect();
        self.beeps.push(first_secs, &samples);
    }

    /// The offsets; panics-free, but an H.265 track ffmpeg cannot decode is an error.
    pub fn report(self) -> Result<SyncReport, String> {
        let (pictures, beeps) = self.into_parts()?;
        analyze(&pictures, beeps.onsets()).map_err(|e| e.to_string())
    }

    /// The pictures with their presentation times, and the beeps.
    pub fn into_parts(self) -> Result<(Vec<PictureObservation>, BeepDetector), String> {
        let pictures = self
            .pictures
            .finish_by_presentation()?
            .into_iter()
            .map(|(presented_secs, picture)| PictureObservation {
                presented_secs,
                ..picture
            })
            .collect();
        Ok((pictures, self.beeps))
    }
}
