//! G.711 A-law and µ-law (ITU-T G.711), the audio of most IP cameras. Segment arithmetic, no
//! tables: a sample costs a few instructions either way.

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32_635;

/// Encodes one 16-bit sample to A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3; // A-law works on 13 bits
    let sign = if pcm >= 0 {
        0xd5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let encoded = if pcm < 32 {
        (pcm >> 1) as u8
    } else {
        let segment = (31 - (pcm as u32).leading_zeros()) as i32 - 4; // 1..=7 for pcm < 4096
        let segment = segment.min(7);
        let mantissa = (pcm >> segment) & 0x0f;
        ((segment << 4) | mantissa) as u8
    };
    encoded ^ sign
}

/// Decodes one A-law byte to a 16-bit sample.
pub fn alaw_decode(byte: u8) -> i16 {
    let value = byte ^ 0x55;
    let segment = i32::from((value & 0x70) >> 4);
    let mantissa = i32::from(value & 0x0f);
    let magnitude = if segment == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (segment - 1)
    };
    if value & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Encodes one 16-bit sample to µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    let exponent = (31 - (pcm as u32).leading_zeros()) as i32 - 7;
    let mantissa = (pcm >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one µ-law byte to a 16-bit sample.
pub fn ulaw_decode(byte: u8) -> i16 {
    let value = !byte;
    let exponent = i32::from((value >> 4) & 0x07);
    let mantissa = i32::from(value & 0x0f);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if value & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Which G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711Law {
    /// PCMA, RTP payload type 8.
    ALaw,
    /// PCMU, RTP payload type 0.
    MuLaw,
}

impl G711Law {
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        let f = match self {
            G711Law::ALaw => alaw_encode,
            G711Law::MuLaw => ulaw_encode,
        };
        out.extend(samples.iter().map(|&s| f(s)));
    }

    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        let f = match self {
            G711Law::ALaw => alaw_decode,
            G711Law::MuLaw => ulaw_decode,
        };
        out.extend(bytes.iter().map(|&b| f(b)));
    }

    pub fn payload_type(self) -> u8 {
        match self {
            G711Law::ALaw => 8,
            G711Law::MuLaw => 0,
        }
    }

    pub fn encoding_name(self) -> &'static str {
        match self {
            G711Law::ALaw => "PCMA",
            G711Law::MuLaw => "PCMU",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points() {
        // Silence and the well-known idle patterns.
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(alaw_decode(0xd5), 8);
        // Full scale.
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xaa);
        assert_eq!(alaw_encode(i16::MIN), 0x2a);
    }

    #[test]
    fn round_trip_error_is_within_the_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            for (enc, dec) in [
                (alaw_encode as fn(i16) -> u8, alaw_decode as fn(u8) -> i16),
                (ulaw_encode, ulaw_decode),
            ] {
                let back = i32::from(dec(enc(s)));
                let error = (back - i32::from(s)).abs();
                // Companding: the step grows with the magnitude, about 1/16 of it at most.
                let allowed = (i32::from(s).abs() / 16).max(16) + 8;
                assert!(error <= allowed, "{s} -> {back}");
            }
        }
    }

    #[test]
    fn every_code_decodes_and_re_encodes_to_itself() {
        for b in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(b)), b, "A-law {b:#x}");
            // µ-law has two zeros (0x7f and 0xff); both decode to 0, which encodes as 0xff.
            if b != 0x7f {
                assert_eq!(ulaw_encode(ulaw_decode(b)), b, "µ-law {b:#x}");
            }
        }
    }
}
