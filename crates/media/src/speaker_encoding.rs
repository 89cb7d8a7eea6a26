//! What a camera's speaker takes, and the encoder for it: G.711 (PCMU, PCMA: stateless) or
//! G.726 at 32 kbit/s (an ADPCM whose state runs from the first packet of a session to its last).

use crate::g711::G711Law;
use crate::g726::{G726Encoder, G726Packing};

/// A speaker's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerEncoding {
    G711(G711Law),
    /// G.726 at 32 kbit/s, in the packing its SDP name says.
    G726(G726Packing),
}

impl SpeakerEncoding {
    /// From an SDP encoding name (any case): `PCMU`, `PCMA`, `G726-32`, `AAL2-G726-32`.
    pub fn from_sdp_name(name: &str) -> Option<SpeakerEncoding> {
        match name.to_ascii_lowercase().as_str() {
            "pcmu" => Some(SpeakerEncoding::G711(G711Law::MuLaw)),
            "pcma" => Some(SpeakerEncoding::G711(G711Law::ALaw)),
            "g726-32" => Some(SpeakerEncoding::G726(G726Packing::Rfc3551)),
            "aal2-g726-32" => Some(SpeakerEncoding::G726(G726Packing::Aal2)),
            _ => None,
        }
    }

    /// The SDP encoding name, lower case (`pcmu`, `g726-32`).
    pub fn name(self) -> &'static str {
        match self {
            SpeakerEncoding::G711(G711Law::MuLaw) => "pcmu",
            SpeakerEncoding::G711(G711Law::ALaw) => "pcma",
            SpeakerEncoding::G726(G726Packing::Rfc3551) => "g726-32",
            SpeakerEncoding::G726(G726Packing::Aal2) => "aal2-g726-32",
        }
    }

    /// A fresh encoder (one per session: G.726's state starts with it).
    pub fn encoder(self) -> SpeakerEncoder {
        match self {
            SpeakerEncoding::G711(law) => SpeakerEncoder::G711(law),
            SpeakerEncoding::G726(packing) => SpeakerEncoder::G726(G726Encoder::new(), packing),
        }
    }
}

/// Encodes 8 kHz PCM for a speaker.
#[derive(Debug, Clone)]
pub enum SpeakerEncoder {
    G711(G711Law),
    G726(G726Encoder, G726Packing),
}

impl SpeakerEncoder {
    pub fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            SpeakerEncoder::G711(law) => law.encode(samples, out),
            SpeakerEncoder::G726(encoder, packing) => encoder.encode(samples, *packing, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_names_map_both_ways_and_others_are_refused() {
        for name in ["PCMU", "pcma", "G726-32", "AAL2-G726-32"] {
            let encoding = SpeakerEncoding::from_sdp_name(name).expect(name);
            assert_eq!(encoding.name(), name.to_ascii_lowercase());
        }
        assert_eq!(SpeakerEncoding::from_sdp_name("G726-16"), None);
        assert_eq!(SpeakerEncoding::from_sdp_name("mpeg4-generic"), None);
        let mut out = Vec::new();
        SpeakerEncoding::G726(G726Packing::Rfc3551)
            .encoder()
            .encode(&[0; 160], &mut out);
        assert_eq!(out.len(), 80);
    }
}
