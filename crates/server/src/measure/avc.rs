//! AVC (length-prefixed NAL units, `avcC` configuration) to Annex B, for the decoder.

use anyhow::{bail, ensure};

/// The `avcC` record: NAL length size and the parameter sets, as Annex B.
#[derive(Debug, Clone)]
pub struct AvcConfig {
    pub length_size: usize,
    pub parameter_sets_annex_b: Vec<u8>,
}

pub fn parse_avcc(avcc: &[u8]) -> anyhow::Result<AvcConfig> {
    ensure!(
        avcc.len() >= 7 && avcc[0] == 1,
        "avcC record too short or wrong version"
    );
    let length_size = usize::from(avcc[4] & 0x03) + 1;
    let mut out = Vec::new();
    let mut pos = 5;
    for count_mask in [0x1f, 0xff] {
        let Some(&count) = avcc.get(pos) else {
            bail!("avcC truncated at byte {pos}");
        };
        pos += 1;
        for _ in 0..(count & count_mask) {
            let Some(len) = avcc.get(pos..pos + 2) else {
                bail!("avcC truncated at byte {pos}");
            };
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let Some(nal) = avcc.get(pos + 2..pos + 2 + len) else {
                bail!("avcC parameter set of {len} bytes runs past the end");
            };
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
            pos += 2 + len;
        }
    }
    Ok(AvcConfig {
        length_size,
        parameter_sets_annex_b: out,
    })
}

/// Length-prefixed NAL units to Annex B.
pub fn to_annex_b(data: &[u8], length_size: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut pos = 0;
    while pos < data.len() {
        let Some(prefix) = data.get(pos..pos + length_size) else {
            bail!("NAL length prefix truncated at byte {pos}");
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let Some(nal) = data.get(pos + length_size..pos + length_size + len) else {
            bail!("NAL unit of {len} bytes at byte {pos} runs past the frame");
        };
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        pos += length_size + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_avcc_and_frames() {
        let avcc = [
            1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 2, 0x67, 0x42, 1, 0, 1, 0x68,
        ];
        let config = parse_avcc(&avcc).unwrap();
        assert_eq!(config.length_size, 4);
        assert_eq!(
            config.parameter_sets_annex_b,
            vec![0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68]
        );
        let frame = [0, 0, 0, 2, 0x65, 9, 0, 0, 0, 1, 0x41];
        assert_eq!(
            to_annex_b(&frame, 4).unwrap(),
            vec![0, 0, 0, 1, 0x65, 9, 0, 0, 0, 1, 0x41]
        );
        assert!(to_annex_b(&[0, 0, 0, 9, 1], 4).is_err());
        assert!(parse_avcc(&[1, 2]).is_err());
    }
}
