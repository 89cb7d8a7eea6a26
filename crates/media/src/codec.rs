//! The codecs lockstep names, once: what the API, metrics and logs print for every source kind.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    H265,
    Opus,
    Pcma,
    Pcmu,
    L16,
    Aac,
    /// Little-endian PCM as a push producer sends it (s16le, f32le).
    Pcm,
}

impl Codec {
    /// The lowercase RTP encoding name (`h264`, `opus`, `pcma`…), as the API prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Opus => "opus",
            Codec::Pcma => "pcma",
            Codec::Pcmu => "pcmu",
            Codec::L16 => "l16",
            Codec::Aac => "aac",
            Codec::Pcm => "pcm",
        }
    }

    /// The codec of an RTP encoding name (any case), if lockstep knows it.
    /// A video codec (H.264, H.265).
    pub fn is_video(self) -> bool {
        matches!(self, Codec::H264 | Codec::H265)
    }

    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        [
            Codec::H264,
            Codec::H265,
            Codec::Opus,
            Codec::Pcma,
            Codec::Pcmu,
            Codec::L16,
            Codec::Aac,
            Codec::Pcm,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case() {
        assert_eq!(Codec::from_encoding_name("H264"), Some(Codec::H264));
        assert_eq!(Codec::from_encoding_name("pcma"), Some(Codec::Pcma));
        assert_eq!(Codec::Opus.to_string(), "opus");
        assert_eq!(Codec::from_encoding_name("vp8"), None);
    }
}
