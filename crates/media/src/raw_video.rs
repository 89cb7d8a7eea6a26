//! Raw pictures a producer sends, into the I420 the H.264 encoder takes.

use crate::pattern::I420Frame;

/// Packed RGB (3 bytes a pixel, rows top to bottom) → I420 with BT.601 limited-range
/// coefficients (what H.264 decoders assume when a stream says nothing); chroma is the mean of
/// each 2×2 block. `width` and `height` must be even and `rgb` exactly `width·height·3` bytes.
pub fn i420_from_rgb24(width: usize, height: usize, rgb: &[u8]) -> Option<I420Frame> {
    if width % 2 != 0 || height % 2 != 0 || rgb.len() != width * height * 3 {
        return None;
    }
    let luma = width * height;
    let mut data = vec![0u8; luma + luma / 2];
    let (y_plane, chroma) = data.split_at_mut(luma);
    let (u_plane, v_plane) = chroma.split_at_mut(luma / 4);
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
        y_plane[i] = (16 + ((66 * r + 129 * g + 25 * b + 128) >> 8)) as u8;
    }
    for cy in 0..height / 2 {
        for cx in 0..width / 2 {
            let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let p = ((cy * 2 + dy) * width + cx * 2 + dx) * 3;
                r += i32::from(rgb[p]);
                g += i32::from(rgb[p + 1]);
                b += i32::from(rgb[p + 2]);
            }
            let (r, g, b) = (r / 4, g / 4, b / 4);
            let c = cy * (width / 2) + cx;
            u_plane[c] = (128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8)) as u8;
            v_plane[c] = (128 + ((112 * r - 94 * g - 18 * b + 128) >> 8)) as u8;
        }
    }
    Some(I420Frame {
        width,
        height,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_land_on_bt601_values() {
        // Four 2×2 blocks: black, white, red, blue.
        let mut rgb = vec![0u8; 4 * 4 * 3];
        for y in 0..4 {
            for x in 0..4 {
                let colour = match (y / 2, x / 2) {
                    (0, 0) => [0, 0, 0],
                    (0, 1) => [255, 255, 255],
                    (1, 0) => [255, 0, 0],
                    _ => [0, 0, 255],
                };
                rgb[(y * 4 + x) * 3..][..3].copy_from_slice(&colour);
            }
        }
        let frame = i420_from_rgb24(4, 4, &rgb).unwrap();
        assert_eq!(frame.y()[0], 16);
        assert_eq!(frame.y()[2], 235);
        assert_eq!(frame.y()[8], 82);
        assert_eq!(frame.y()[10], 41);
        assert_eq!((frame.u()[0], frame.v()[0]), (128, 128));
        assert_eq!((frame.u()[2], frame.v()[2]), (90, 240));
        assert_eq!((frame.u()[3], frame.v()[3]), (240, 110));
        assert!(i420_from_rgb24(3, 4, &[0; 36]).is_none());
        assert!(i420_from_rgb24(4, 4, &[0; 47]).is_none());
    }
}
