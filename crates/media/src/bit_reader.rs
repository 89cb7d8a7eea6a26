//! Reads bit fields most significant bit first, as RFC 3640 AU headers, the MPEG-4 audio
//! configs (AudioSpecificConfig, StreamMuxConfig) and H.265 parameter sets (with exp-Golomb
//! codes) are laid out.

/// A cursor over bits; every read past the end is `None`, never a panic.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, bit: 0 }
    }

    /// The next `count` bits (at most 32) as an unsigned number.
    pub fn read(&mut self, count: u32) -> Option<u32> {
        if count > 32 || self.bit + count as usize > self.data.len() * 8 {
            return None;
        }
        let mut value: u64 = 0;
        for _ in 0..count {
            let byte = self.data[self.bit / 8];
            let bit = (byte >> (7 - self.bit % 8)) & 1;
            value = (value << 1) | u64::from(bit);
            self.bit += 1;
        }
        Some(value as u32)
    }

    pub fn read_flag(&mut self) -> Option<bool> {
        self.read(1).map(|b| b == 1)
    }

    /// An unsigned exp-Golomb code (`ue(v)` of H.264/H.265), up to 31 leading zeros.
    pub fn read_ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.read_flag()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.read(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Skips `count` bits (any number); `None` past the end.
    pub fn skip(&mut self, count: usize) -> Option<()> {
        if self.bit + count > self.data.len() * 8 {
            return None;
        }
        self.bit += count;
        Some(())
    }

    /// Bits read so far.
    pub fn position(&self) -> usize {
        self.bit
    }
}

/// Appends bit fields most significant bit first (re-packing an AudioSpecificConfig found at a
/// bit offset inside a StreamMuxConfig).
#[derive(Debug, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    pub fn write(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            if self.bits % 8 == 0 {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bit << (7 - self.bits % 8);
            }
            self.bits += 1;
        }
    }

    /// The bytes, the last one padded with zero bits.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_bytes_and_stops_at_the_end() {
        let mut r = BitReader::new(&[0b1010_1100, 0b0101_0011]);
        assert_eq!(r.read(3), Some(0b101));
        assert_eq!(r.read(7), Some(0b011_0001));
        assert_eq!(r.position(), 10);
        assert_eq!(r.read(7), None, "past the end");
        assert_eq!(r.read(6), Some(0b01_0011));
        assert_eq!(r.read(1), None);
    }

    #[test]
    fn reads_exp_golomb_codes() {
        // 1 → 0, 010 → 1, 011 → 2, 00100 → 3, 0001000 → 7.
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0001, 0b0000_0000]);
        let codes: Vec<_> = (0..5).map(|_| r.read_ue()).collect();
        assert_eq!(codes, vec![Some(0), Some(1), Some(2), Some(3), Some(7)]);
        assert_eq!(r.read_ue(), None, "only zeros left");
        assert_eq!(BitReader::new(&[0, 0, 0, 0, 0]).read_ue(), None);
    }

    #[test]
    fn writes_what_it_reads() {
        let mut w = BitWriter::default();
        w.write(0b10, 2);
        w.write(0b1_1111_0000, 9);
        let bytes = w.into_bytes();
        assert_eq!(bytes, vec![0b1011_1110, 0b0000_0000]);
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read(2), Some(0b10));
        assert_eq!(r.read(9), Some(0b1_1111_0000));
    }
}
