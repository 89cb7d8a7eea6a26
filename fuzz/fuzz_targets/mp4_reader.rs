//! Any bytes as an MP4 file: the reader returns tracks whose every sample lies inside the file,
//! or an error saying where it is malformed. Never a panic.
//!
//! `cargo fuzz run mp4_reader` (from `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_media::mp4_reader::Mp4File;

fuzz_target!(|data: &[u8]| {
    let len = data.len();
    if let Ok(file) = Mp4File::parse(data.to_vec()) {
        for track in &file.tracks {
            for sample in &track.samples {
                assert!(sample.offset + sample.size <= len);
                assert_eq!(file.sample_data(sample).len(), sample.size);
            }
        }
    }
});
