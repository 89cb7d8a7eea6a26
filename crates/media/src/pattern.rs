//! The beep-flash test pattern: what `lockstep sim-camera` shows and `lockstep measure` reads.
//!
//! - Picture: dark grey; once a second (the frame captured at each whole second of true time) the
//!   whole picture below the stripe is white.
//! - Stripe: the top rows carry a machine-readable code of the frame index and its capture
//!   wallclock, as large black/white cells that survive H.264 compression: 4 rows × 24 cells,
//!   96 bits = index (32) + capture µs since the Unix epoch (56, 0 when absent) + CRC-8.
//! - Sound: a 1 kHz beep of 100 ms starting at each whole second of true time, the instant of the
//!   flash.

/// Luma of the dark picture and of the flash.
pub const DARK_LUMA: u8 = 40;
pub const FLASH_LUMA: u8 = 235;
/// Luma of the stripe's 0 and 1 cells.
const CELL_ZERO_LUMA: u8 = 16;
const CELL_ONE_LUMA: u8 = 235;
pub const STRIPE_ROWS: usize = 4;
pub const STRIPE_BITS_PER_ROW: usize = 24;
/// Height of one stripe row in pixels (one macroblock: compression keeps it crisp).
pub const STRIPE_ROW_HEIGHT: usize = 16;
/// Pixels of stripe at the top of every frame.
pub const STRIPE_HEIGHT: usize = STRIPE_ROWS * STRIPE_ROW_HEIGHT;

pub const BEEP_HZ: f64 = 1_000.0;
pub const BEEP_SECS: f64 = 0.1;
/// Peak amplitude of the beep, as a fraction of full scale.
pub const BEEP_AMPLITUDE: f64 = 0.5;

/// What the stripe says about a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeData {
    pub frame_index: u32,
    /// Capture wallclock in µs since the Unix epoch (56 bits), absent in replay mode.
    pub capture_unix_micros: Option<u64>,
}

const MICROS_MASK: u64 = (1 << 56) - 1;

/// CRC-8 (polynomial 0x07) starting from 0xff, so that a blank picture (all cells 0) or a white
/// one (all 1) is not a valid code.
fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0xffu8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

impl StripeData {
    fn to_bits(self) -> [bool; STRIPE_ROWS * STRIPE_BITS_PER_ROW] {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&self.frame_index.to_be_bytes());
        let micros = self.capture_unix_micros.unwrap_or(0) & MICROS_MASK;
        bytes[4..11].copy_from_slice(&micros.to_be_bytes()[1..]);
        bytes[11] = crc8(&bytes[..11]);
        let mut bits = [false; STRIPE_ROWS * STRIPE_BITS_PER_ROW];
        for (i, bit) in bits.iter_mut().enumerate() {
            *bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
        }
        bits
    }

    fn from_bits(bits: &[bool; STRIPE_ROWS * STRIPE_BITS_PER_ROW]) -> Option<Self> {
        let mut bytes = [0u8; 12];
        for (i, &bit) in bits.iter().enumerate() {
            if bit {
                bytes[i / 8] |= 0x80 >> (i % 8);
            }
        }
        if crc8(&bytes[..11]) != bytes[11] {
            return None;
        }
        let mut micros = [0u8; 8];
        micros[1..].copy_from_slice(&bytes[4..11]);
        let micros = u64::from_be_bytes(micros);
        Some(StripeData {
            frame_index: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            capture_unix_micros: (micros != 0).then_some(micros),
        })
    }
}

/// Width of one stripe cell for a picture `width` pixels wide.
fn cell_width(width: usize) -> usize {
    width / STRIPE_BITS_PER_ROW
}

/// An I420 picture: Y plane then U then V, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Frame {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl I420Frame {
    /// # Panics
    /// If the size is odd or too small for the stripe: the caller validates `--size`.
    pub fn new(width: usize, height: usize) -> Self {
        assert!(
            width % 2 == 0 && height % 2 == 0,
            "I420 needs even dimensions"
        );
        assert!(
            width >= STRIPE_BITS_PER_ROW * 2 && height > STRIPE_HEIGHT,
            "picture too small for the stripe"
        );
        let luma = width * height;
        let mut data = vec![128u8; luma + luma / 2];
        data[..luma].fill(DARK_LUMA);
        I420Frame {
            width,
            height,
            data,
        }
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    pub fn u(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma..luma + luma / 4]
    }

    pub fn v(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma + luma / 4..]
    }

    /// Draws the pattern: flash or dark below the stripe, and the stripe's code.
    pub fn draw(&mut self, flash: bool, stripe: StripeData) {
        let (width, height) = (self.width, self.height);
        let y = &mut self.data[..width * height];
        y[STRIPE_HEIGHT * width..].fill(if flash { FLASH_LUMA } else { DARK_LUMA });
        let cell = cell_width(width);
        for (i, bit) in stripe.to_bits().iter().enumerate() {
            let (row, col) = (i / STRIPE_BITS_PER_ROW, i % STRIPE_BITS_PER_ROW);
            let value = if *bit { CELL_ONE_LUMA } else { CELL_ZERO_LUMA };
            for line in row * STRIPE_ROW_HEIGHT..(row + 1) * STRIPE_ROW_HEIGHT {
                let start = line * width + col * cell;
                y[start..start + cell].fill(value);
            }
        }
    }
}

/// Reads the stripe from a luma plane (`stride` bytes per line), or `None` if the code does
/// not check out (not our pattern, or damaged).
pub fn read_stripe(y: &[u8], stride: usize, width: usize, height: usize) -> Option<StripeData> {
    if height <= STRIPE_HEIGHT || width < STRIPE_BITS_PER_ROW * 2 || y.len() < stride * height {
        return None;
    }
    let cell = cell_width(width);
    let mut bits = [false; STRIPE_ROWS * STRIPE_BITS_PER_ROW];
    for (i, bit) in bits.iter_mut().enumerate() {
        let (row, col) = (i / STRIPE_BITS_PER_ROW, i % STRIPE_BITS_PER_ROW);
        // The middle of the cell: edges blur under compression.
        let lines = row * STRIPE_ROW_HEIGHT + STRIPE_ROW_HEIGHT / 4
            ..(row + 1) * STRIPE_ROW_HEIGHT - STRIPE_ROW_HEIGHT / 4;
        let cols = col * cell + cell / 4..(col + 1) * cell - cell / 4;
        let count = lines.len() * cols.len();
        let sum: usize = lines
            .flat_map(|line| y[line * stride + cols.start..line * stride + cols.end].iter())
            .map(|&v| usize::from(v))
            .sum();
        *bit = sum / count.max(1) > 128;
    }
    StripeData::from_bits(&bits)
}

/// Mean luma of the picture below the stripe: above 128 is a flash.
pub fn mean_luma_below_stripe(y: &[u8], stride: usize, width: usize, height: usize) -> f64 {
    let mut sum = 0u64;
    let mut count = 0u64;
    // Every fourth line and pixel is plenty for a full-picture flash.
    for line in (STRIPE_HEIGHT.min(height)..height).step_by(4) {
        for &v in y[line * stride..line * stride + width].iter().step_by(4) {
            sum += u64::from(v);
            count += 1;
        }
    }
    if count == 0 {
        0.0
    } else {
        sum as f64 / count as f64
    }
}

/// The pattern's sound at true time `secs` (seconds from the pattern's origin, a whole second),
/// in [-1, 1].
pub fn beep_value(secs: f64) -> f64 {
    let into_second = secs - secs.floor();
    if into_second < BEEP_SECS {
        BEEP_AMPLITUDE * (2.0 * std::f64::consts::PI * BEEP_HZ * into_second).sin()
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_round_trips() {
        let mut frame = I420Frame::new(640, 360);
        let data = StripeData {
            frame_index: 123_456,
            capture_unix_micros: Some(1_763_800_000_123_456),
        };
        frame.draw(true, data);
        assert_eq!(read_stripe(frame.y(), 640, 640, 360), Some(data));
        assert!(mean_luma_below_stripe(frame.y(), 640, 640, 360) > 200.0);
        let replay = StripeData {
            frame_index: 7,
            capture_unix_micros: None,
        };
        frame.draw(false, replay);
        assert_eq!(read_stripe(frame.y(), 640, 640, 360), Some(replay));
        assert!(mean_luma_below_stripe(frame.y(), 640, 640, 360) < 60.0);
    }

    #[test]
    fn a_damaged_stripe_is_rejected() {
        let mut frame = I420Frame::new(320, 240);
        frame.draw(
            false,
            StripeData {
                frame_index: 5,
                capture_unix_micros: Some(42),
            },
        );
        // Flip one cell.
        let cell = cell_width(320);
        for line in 0..STRIPE_ROW_HEIGHT {
            let start = line * 320 + 3 * cell;
            for v in &mut frame.data[start..start + cell] {
                *v = 255 - *v;
            }
        }
        assert_eq!(read_stripe(frame.y(), 320, 320, 240), None);
        // A plain picture, dark or white, has no stripe.
        for luma in [DARK_LUMA, FLASH_LUMA] {
            let plain = vec![luma; 320 * 240];
            assert_eq!(read_stripe(&plain, 320, 320, 240), None);
        }
    }

    #[test]
    fn beep_starts_on_the_second_and_lasts_100_ms() {
        assert_eq!(beep_value(2.0), 0.0); // sin(0)
        assert!(beep_value(2.00025).abs() > 0.49); // a quarter period in: the peak
        assert_eq!(beep_value(2.1001), 0.0);
        assert_eq!(beep_value(2.5), 0.0);
    }
}
