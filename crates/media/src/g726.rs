//! G.726 at 32 kbit/s (ITU-T G.726, 4-bit ADPCM at 8 kHz): what the speakers of several
//! Hikvision and Dahua cameras take on their ONVIF backchannel when they take no G.711.
//!
//! The computation follows the recommendation's blocks (section 4, named in the comments) in its
//! own fixed-point arithmetic, on the 14-bit linear range: the decoder at the camera runs the
//! same adaptation, so the encoder must match it bit for bit, not just sound right. Checked
//! against Sun's reference decoder (as sox ships it) in `tests/g726_reference.rs`.

/// How 4-bit codewords are packed into bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G726Packing {
    /// RFC 3551 `G726-32`: the first codeword in the low nibble.
    Rfc3551,
    /// ITU I.366.2 (ATM AAL2) `AAL2-G726-32`: the first codeword in the high nibble.
    Aal2,
}

impl G726Packing {
    /// Packs codewords two to a byte (an odd count leaves the last nibble empty).
    pub fn pack(self, codes: &[u8], out: &mut Vec<u8>) {
        for pair in codes.chunks(2) {
            let (first, second) = (pair[0] & 0xf, pair.get(1).map_or(0, |c| c & 0xf));
            out.push(match self {
                G726Packing::Rfc3551 => first | second << 4,
                G726Packing::Aal2 => first << 4 | second,
            });
        }
    }

    /// Unpacks two codewords a byte.
    pub fn unpack(self, bytes: &[u8]) -> Vec<u8> {
        bytes
            .iter()
            .flat_map(|&b| match self {
                G726Packing::Rfc3551 => [b & 0xf, b >> 4],
                G726Packing::Aal2 => [b >> 4, b & 0xf],
            })
            .collect()
    }
}

/// Quantizer decision levels (table 7/G.726, 32 kbit/s), in the log domain.
const DECISION_LEVELS: [i32; 7] = [-124, 80, 178, 246, 300, 349, 400];
/// Codeword → normalized log magnitude of the reconstructed difference (IQUAN).
const DQLN: [i32; 16] = [
    -2048, 4, 135, 213, 273, 323, 373, 425, 425, 373, 323, 273, 213, 135, 4, -2048,
];
/// Codeword → log scale factor multiplier (FUNCTW), ×32 as used.
const WI: [i32; 16] = [
    -12, 18, 41, 64, 112, 198, 355, 1122, 1122, 355, 198, 112, 64, 41, 18, -12,
];
/// Codeword → speed control input (FUNCTF).
const FI: [i32; 16] = [
    0, 0, 0, 0x200, 0x200, 0x200, 0x600, 0xE00, 0xE00, 0x600, 0x200, 0x200, 0x200, 0, 0, 0,
];

/// The adaptive state shared by encoder and decoder (section 4.2).
#[derive(Debug, Clone)]
struct State {
    /// Slow (steady-state) quantizer scale factor.
    yl: i32,
    /// Fast (non-steady) quantizer scale factor.
    yu: i32,
    /// Short- and long-term averages of FI.
    dms: i32,
    dml: i32,
    /// Speed control.
    ap: i32,
    /// Pole and zero predictor coefficients.
    a: [i32; 2],
    b: [i32; 6],
    /// Signs of the last two partial reconstructions.
    pk: [i32; 2],
    /// Last six quantized differences and last two reconstructions, in the 4-bit exponent,
    /// 6-bit mantissa floating form the predictors multiply by.
    dq: [i32; 6],
    sr: [i32; 2],
    /// Tone detected.
    td: i32,
}

impl Default for State {
    fn default() -> Self {
        State {
            yl: 34_816,
            yu: 544,
            dms: 0,
            dml: 0,
            ap: 0,
            a: [0; 2],
            b: [0; 6],
            pk: [0; 2],
            dq: [32; 6],
            sr: [32; 2],
            td: 0,
        }
    }
}

/// The smallest i with `value < 2^i` (0..=15): the bit length.
fn bit_length(value: i32) -> i32 {
    (0..15).find(|&i| value < 1 << i).unwrap_or(15)
}

/// FMULT: a 16-bit coefficient times a value in the floating form.
fn fmult(an: i32, srn: i32) -> i32 {
    let anmag = if an > 0 { an } else { (-an) & 0x1FFF };
    let anexp = bit_length(anmag) - 6;
    let anmant = if anmag == 0 {
        32
    } else if anexp >= 0 {
        anmag >> anexp
    } else {
        anmag << -anexp
    };
    let wanexp = anexp + ((srn >> 6) & 0xF) - 13;
    let wanmant = (anmant * (srn & 0x3F) + 0x30) >> 4;
    let retval = if wanexp >= 0 {
        (wanmant << wanexp) & 0x7FFF
    } else {
        wanmant >> -wanexp
    };
    // The sign of the 16-bit values.
    if (an as i16 ^ srn as i16) < 0 {
        -retval
    } else {
        retval
    }
}

/// A value in the predictors' floating form (FLOATA/FLOATB): sign, exponent, mantissa.
fn to_float(value: i32) -> i32 {
    let magnitude = value.unsigned_abs().min(0x7FFF) as i32;
    let float = if magnitude == 0 {
        0x20
    } else {
        let exponent = bit_length(magnitude);
        (exponent << 6) + ((magnitude << 6) >> exponent)
    };
    if value < 0 {
        float - 0x400
    } else {
        float
    }
}

impl State {
    /// The signal estimate: (the zero predictor's, the whole), both halved (ACCUM).
    fn estimate(&self) -> (i32, i32) {
        let sezi: i32 = (0..6).map(|i| fmult(self.b[i] >> 2, self.dq[i])).sum();
        let sei = sezi + fmult(self.a[1] >> 2, self.sr[1]) + fmult(self.a[0] >> 2, self.sr[0]);
        (sezi >> 1, sei >> 1)
    }

    /// MIX: the quantizer's scale factor.
    fn step_size(&self) -> i32 {
        if self.ap >= 256 {
            return self.yu;
        }
        let mut y = self.yl >> 6;
        let dif = self.yu - y;
        let al = self.ap >> 2;
        if dif > 0 {
            y += (dif * al) >> 6;
        } else if dif < 0 {
            y += (dif * al + 0x3F) >> 6;
        }
        y
    }

    /// One sample through the adaptation (the blocks after QUAN and IQUAN), from its codeword
    /// and the values computed for it.
    fn update(&mut self, code: usize, y: i32, dq: i32, sr: i32, dqsez: i32) {
        let wi = WI[code] << 5;
        let fi = FI[code];
        let pk0 = i32::from(dqsez < 0);
        let mag = dq & 0x7FFF;
        // TRANS: a transition from a tone (data) is reset.
        let ylint = self.yl >> 15;
        let ylfrac = (self.yl >> 10) & 0x1F;
        let thr1 = (32 + ylfrac) << ylint;
        let thr2 = if ylint > 9 { 31 << 10 } else { thr1 };
        let dqthr = (thr2 + (thr2 >> 1)) >> 1;
        let tr = self.td != 0 && mag > dqthr;

        // FUNCTW, FILTD, LIMB, FILTE: the scale factors.
        self.yu = (y + ((wi - y) >> 5)).clamp(544, 5120);
        self.yl += self.yu + ((-self.yl) >> 6);

        let mut a2p = 0;
        if tr {
            self.a = [0; 2];
            self.b = [0; 6];
        } else {
            // UPA2, LIMC: the second pole.
            let pks1 = pk0 ^ self.pk[0];
            a2p = self.a[1] - (self.a[1] >> 7);
            if dqsez != 0 {
                let fa1 = if pks1 != 0 { self.a[0] } else { -self.a[0] };
                a2p += if fa1 < -8191 {
                    -0x100
                } else if fa1 > 8191 {
                    0xFF
                } else {
                    fa1 >> 5
                };
                if pk0 ^ self.pk[1] != 0 {
                    a2p = if a2p <= -12_160 {
                        -12_288
                    } else if a2p >= 12_416 {
                        12_288
                    } else {
                        a2p - 0x80
                    };
                } else {
                    a2p = if a2p <= -12_416 {
                        -12_288
                    } else if a2p >= 12_160 {
                        12_288
                    } else {
                        a2p + 0x80
                    };
                }
            }
            self.a[1] = a2p;
            // UPA1, LIMD: the first pole.
            self.a[0] -= self.a[0] >> 8;
            if dqsez != 0 {
                self.a[0] += if pks1 == 0 { 192 } else { -192 };
            }
            let a1ul = 15_360 - a2p;
            self.a[0] = self.a[0].clamp(-a1ul, a1ul);
            // UPB: the zeros.
            for i in 0..6 {
                self.b[i] -= self.b[i] >> 8;
                if mag != 0 {
                    self.b[i] += if (dq as i16 ^ self.dq[i] as i16) >= 0 {
                        128
                    } else {
                        -128
                    };
                }
            }
        }
        self.dq.rotate_right(1);
        self.dq[0] = if mag == 0 {
            if dq >= 0 {
                0x20
            } else {
                0x20 - 0x400
            }
        } else {
            to_float(if dq as i16 >= 0 { mag } else { -mag })
        };
        self.sr[1] = self.sr[0];
        self.sr[0] = if sr <= -32_768 {
            0x20 - 0x400
        } else {
            to_float(sr)
        };
        self.pk[1] = self.pk[0];
        self.pk[0] = pk0;
        // TONE.
        self.td = i32::from(!tr && a2p < -11_776);
        // FILTA, FILTB, SUBTC, FILTC: the speed control.
        self.dms += (fi - self.dms) >> 5;
        self.dml += ((fi << 2) - self.dml) >> 7;
        self.ap = if tr {
            256
        } else if y < 1536 || self.td == 1 || ((self.dms << 2) - self.dml).abs() >= (self.dml >> 3)
        {
            self.ap + ((0x200 - self.ap) >> 4)
        } else {
            self.ap + ((-self.ap) >> 4)
        };
    }
}

/// IQUAN + ADDA + ANTILOG: the quantized difference from a codeword, in sign-magnitude
/// (bit 15 the sign).
fn reconstruct(code: usize, y: i32) -> i32 {
    let negative = code & 8 != 0;
    let dql = DQLN[code] + (y >> 2);
    if dql < 0 {
        return if negative { -0x8000 } else { 0 };
    }
    let dex = (dql >> 7) & 15;
    let dqt = 128 + (dql & 127);
    let dq = (dqt << 7) >> (14 - dex);
    if negative {
        dq - 0x8000
    } else {
        dq
    }
}

/// ADDB: the reconstructed signal.
fn reconstructed(se: i32, dq: i32) -> i32 {
    if dq < 0 {
        se - (dq & 0x3FFF)
    } else {
        se + dq
    }
}

/// A G.726 32 kbit/s encoder: 16-bit samples at 8 kHz → 4-bit codewords.
#[derive(Debug, Clone, Default)]
pub struct G726Encoder {
    state: State,
}

impl G726Encoder {
    pub fn new() -> Self {
        G726Encoder::default()
    }

    /// One sample's codeword (0..=15).
    pub fn encode_sample(&mut self, sample: i16) -> u8 {
        let sl = i32::from(sample) >> 2; // 14-bit linear
        let (sez, se) = self.state.estimate();
        let d = sl - se;
        let y = self.state.step_size();
        // LOG, SUBTB, QUAN.
        let dqm = d.abs();
        let exponent = bit_length(dqm >> 1);
        let mantissa = ((dqm << 7) >> exponent) & 0x7F;
        let dln = (exponent << 7) + mantissa - (y >> 2);
        let i = DECISION_LEVELS
            .iter()
            .take_while(|&&level| dln >= level)
            .count() as i32;
        let code = if d < 0 {
            15 - i
        } else if i == 0 {
            15
        } else {
            i
        } as usize;
        let dq = reconstruct(code, y);
        let sr = reconstructed(se, dq);
        self.state.update(code, y, dq, sr, sr + sez - se);
        code as u8
    }

    /// Encodes `samples` and packs them (two a byte) onto `out`.
    pub fn encode(&mut self, samples: &[i16], packing: G726Packing, out: &mut Vec<u8>) {
        let codes: Vec<u8> = samples.iter().map(|&s| self.encode_sample(s)).collect();
        packing.pack(&codes, out);
    }
}

/// A G.726 32 kbit/s decoder (the simulator's speaker, the tests).
#[derive(Debug, Clone, Default)]
pub struct G726Decoder {
    state: State,
}

impl G726Decoder {
    pub fn new() -> Self {
        G726Decoder::default()
    }

    /// One codeword's sample.
    pub fn decode_code(&mut self, code: u8) -> i16 {
        let code = usize::from(code & 0xf);
        let (sez, se) = self.state.estimate();
        let y = self.state.step_size();
        let dq = reconstruct(code, y);
        let sr = reconstructed(se, dq);
        self.state.update(code, y, dq, sr, sr + sez - se);
        // Back from 14 bits.
        (sr.clamp(-8192, 8191) << 2) as i16
    }

    pub fn decode(&mut self, bytes: &[u8], packing: G726Packing, out: &mut Vec<i16>) {
        out.extend(
            packing
                .unpack(bytes)
                .into_iter()
                .map(|c| self.decode_code(c)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                (amplitude * (2.0 * std::f64::consts::PI * hz * n as f64 / 8_000.0).sin()) as i16
            })
            .collect()
    }

    fn snr_db(reference: &[i16], decoded: &[i16], skip: usize) -> f64 {
        let (mut signal, mut noise) = (0.0, 0.0);
        for (&r, &d) in reference.iter().zip(decoded).skip(skip) {
            signal += f64::from(r).powi(2);
            noise += (f64::from(r) - f64::from(d)).powi(2);
        }
        10.0 * (signal / noise.max(1.0)).log10()
    }

    #[test]
    fn a_tone_round_trips_with_adpcm_quality() {
        for (hz, amplitude) in [(440.0, 8_000.0), (1_000.0, 2_000.0), (2_500.0, 12_000.0)] {
            let input = tone(hz, amplitude, 8_000);
            let mut bytes = Vec::new();
            G726Encoder::new().encode(&input, G726Packing::Rfc3551, &mut bytes);
            assert_eq!(bytes.len(), 4_000);
            let mut output = Vec::new();
            G726Decoder::new().decode(&bytes, G726Packing::Rfc3551, &mut output);
            let snr = snr_db(&input, &output, 800);
            assert!(snr > 15.0, "{hz} Hz at {amplitude}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn the_two_packings_differ_by_nibble_order_only() {
        let mut rfc = Vec::new();
        G726Packing::Rfc3551.pack(&[1, 2, 3], &mut rfc);
        assert_eq!(rfc, [0x21, 0x03]);
        let mut aal2 = Vec::new();
        G726Packing::Aal2.pack(&[1, 2, 3], &mut aal2);
        assert_eq!(aal2, [0x12, 0x30]);
        assert_eq!(G726Packing::Aal2.unpack(&aal2), [1, 2, 3, 0]);
        assert_eq!(G726Packing::Rfc3551.unpack(&rfc), [1, 2, 3, 0]);
    }

    #[test]
    fn silence_and_full_scale_stay_in_range() {
        let mut encoder = G726Encoder::new();
        let mut decoder = G726Decoder::new();
        let input: Vec<i16> = (0..4_000)
            .map(|n| match n / 500 % 3 {
                0 => 0,
                1 => i16::MAX,
                _ => i16::MIN,
            })
            .collect();
        for &s in &input {
            let code = encoder.encode_sample(s);
            assert!(code < 16);
            decoder.decode_code(code);
        }
    }
}
