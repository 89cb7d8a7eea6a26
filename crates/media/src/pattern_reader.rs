//! Reads the beep-flash pattern out of encoded pictures and decoded sound, with their presentation
//! times: what `lockstep measure` and the ingest tests and benchmarks share.

use crate::beep_flash::{
    analyze, observe_picture, AnalysisError, BeepDetector, PictureObservation, SyncReport,
};
use crate::{CodecError, H264Decoder};

#[derive(Debug)]
pub struct PatternReader {
    decoder: H264Decoder,
    pictures: Vec<PictureObservation>,
    beeps: BeepDetector,
}

impl PatternReader {
    pub fn new(audio_rate_hz: u32) -> Result<Self, CodecError> {
        Ok(PatternReader {
            decoder: H264Decoder::new()?,
            pictures: Vec::new(),
            beeps: BeepDetector::new(audio_rate_hz),
        })
    }

    /// Decodes an access unit (Annex B) and looks at its picture, without recording it. A damaged
    /// picture is skipped, not fatal: it shows in the dropped-frame count.
    pub fn observe(&mut self, annex_b: &[u8]) -> Option<PictureObservation> {
        let luma = self.decoder.decode(annex_b).ok()??;
        Some(observe_picture(
            0.0,
            &luma.y,
            luma.stride,
            luma.width,
            luma.height,
        ))
    }

    /// Decodes and records an access unit presented at `presented_secs`.
    pub fn video(&mut self, presented_secs: f64, annex_b: &[u8]) -> Option<&PictureObservation> {
        let picture = self.observe(annex_b)?;
        self.pictures.push(PictureObservation {
            presented_secs,
            ..picture
        });
        self.pictures.last()
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

    pub fn report(&self) -> Result<SyncReport, AnalysisError> {
        analyze(&self.pictures, self.beeps.onsets())
    }

    pub fn into_parts(self) -> (Vec<PictureObservation>, BeepDetector) {
        (self.pictures, self.beeps)
    }
}
