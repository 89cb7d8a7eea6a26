//! Codecs that cost nothing, for the benches and the fuzz target: what they measure or probe is
//! the sync engine alone. Audio packets decode to a fixed number of samples; there is no media.

use crate::{AudioChunk, AudioDecode};

/// A decoded chunk that is only its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleCount(pub u32);

impl AudioChunk for SampleCount {
    fn samples(&self) -> u32 {
        self.0
    }
    fn skip_front(&mut self, samples: u32) {
        self.0 -= samples.min(self.0);
    }
}

/// Every packet, whatever its payload, decodes to this many samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedChunks(pub u32);

impl<P> AudioDecode<P> for FixedChunks {
    type Chunk = SampleCount;
    fn decode(&mut self, _: P) -> Option<SampleCount> {
        Some(SampleCount(self.0))
    }
}
