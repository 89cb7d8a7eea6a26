//! Any bytes as an MP4 file, progressive or fragmented (recording segments, the files export
//! and start-up recovery read): the reader returns tracks whose every sample lies inside the
//! file — inside its complete fragments when fragmented — or an error saying where it is
//! malformed. Never a panic, never an allocation the input size does not justify.
//!
//! `cargo fuzz run mp4_reader corpus/mp4_reader seeds/mp4_reader` (from `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_media::mp4_reader::{Mp4File, Mp4Index};

fuzz_target!(|data: &[u8]| {
    let len = data.len();
    if let Ok(index) = Mp4Index::read(data) {
        assert!(index.complete_len <= len);
        for track in &index.tracks {
            for sample in &track.samples {
                let end = sample.offset + sample.size;
                assert!(end <= len);
                if index.fragmented && index.fragments > 0 {
                    assert!(end <= index.complete_len);
                }
            }
        }
    }
    if let Ok(file) = Mp4File::parse(data.to_vec()) {
        for track in &file.tracks {
            for sample in &track.samples {
                assert_eq!(file.sample_data(sample).len(), sample.size);
            }
        }
    }
});
