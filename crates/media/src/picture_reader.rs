//! Looks at the pictures of a video track (H.264 or H.265) for the beep-flash pattern, each
//! tagged with what the caller needs back (a presentation time, an RTP timestamp).
//!
//! H.264 is decoded at once by the bundled OpenH264. Lockstep has no H.265 decoder of its own
//! (it never decodes camera video to serve it), so the instruments hand H.265 to `ffmpeg` on the
//! PATH: the access units are kept from the first keyframe and decoded in one run at the end,
//! one picture out for each unit in, in presentation order: callers whose tags are presentation
//! times use [`PictureReader::finish_by_presentation`] to match B-frames to their pictures.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::beep_flash::{observe_picture, PictureObservation};
use crate::h265_sps::H265Sps;
use crate::{h264, h265, Codec, CodecError, H264Decoder};

pub struct PictureReader<T> {
    decoder: Decoder<T>,
    done: Vec<(T, PictureObservation)>,
}

enum Decoder<T> {
    H264(H264Decoder),
    H265 {
        stream: Vec<u8>,
        tags: Vec<T>,
        /// The displayed size, from the first keyframe's SPS.
        size: Option<(usize, usize)>,
    },
}

impl<T> std::fmt::Debug for PictureReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PictureReader")
            .field("done", &self.done.len())
            .finish_non_exhaustive()
    }
}

impl<T> PictureReader<T> {
    /// A reader of `codec` (H.264 unless H.265).
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        let decoder = match codec {
            Codec::H265 => Decoder::H265 {
                stream: Vec::new(),
                tags: Vec::new(),
                size: None,
            },
            _ => Decoder::H264(H264Decoder::new()?),
        };
        Ok(PictureReader {
            decoder,
            done: Vec::new(),
        })
    }

    /// Takes one access unit (Annex B). Returns its observation when it is decoded at once
    /// (H.264); H.265 pictures come out of [`finish`](Self::finish). A damaged picture is
    /// skipped, not fatal: it shows as a missing frame.
    pub fn push(&mut self, tag: T, annex_b: &[u8]) -> Option<&(T, PictureObservation)> {
        match &mut self.decoder {
            Decoder::H264(decoder) => {
                let luma = decoder.decode(annex_b).ok()??;
                let picture = observe_picture(0.0, &luma.y, luma.stride, luma.width, luma.height);
                self.done.push((tag, picture));
                self.done.last()
            }
            Decoder::H265 { stream, tags, size } => {
                if size.is_none() {
                    // ffmpeg skips what comes before the first keyframe: so must the tags.
                    let nals = h264::split_annex_b(annex_b);
                    let keyframe = nals
                        .iter()
                        .any(|n| h265::is_keyframe_nal(h265::nal_type(n)));
                    *size = nals
                        .iter()
                        .find_map(|nal| H265Sps::parse(nal))
                        .filter(|_| keyframe)
                        .map(|sps| (sps.width as usize, sps.height as usize));
                    size.as_ref()?;
                }
                stream.extend_from_slice(annex_b);
                tags.push(tag);
                None
            }
        }
    }

    /// Every observation, in the order the units came.
    pub fn finish(self) -> Result<Vec<(T, PictureObservation)>, String> {
        self.finish_with(|_| {})
    }

    /// The same for tags that are presentation times: ffmpeg puts out H.265 pictures in
    /// presentation order, so the tags (in decoding order, B-frames after the pictures they
    /// refer to) are sorted before they are matched.
    pub fn finish_by_presentation(self) -> Result<Vec<(T, PictureObservation)>, String>
    where
        T: PartialOrd,
    {
        self.finish_with(|tags| {
            tags.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal))
        })
    }

    fn finish_with(
        self,
        order: impl FnOnce(&mut Vec<T>),
    ) -> Result<Vec<(T, PictureObservation)>, String> {
        match self.decoder {
            Decoder::H264(_) => Ok(self.done),
            Decoder::H265 {
                stream,
                mut tags,
                size: Some((width, height)),
            } => {
                order(&mut tags);
                let pictures = decode_with_ffmpeg(stream, width, height)?;
                if pictures.len() != tags.len() {
                    return Err(format!(
                        "ffmpeg decoded {} H.265 pictures of {} access units, so they cannot be \
                         matched to their timestamps",
                        pictures.len(),
                        tags.len()
                    ));
                }
                Ok(tags.into_iter().zip(pictures).collect())
            }
            Decoder::H265 { size: None, .. } => Ok(Vec::new()),
        }
    }
}

/// Decodes an H.265 Annex B stream to greyscale with ffmpeg, observing each picture as it
/// comes (the pictures are not kept).
fn decode_with_ffmpeg(
    stream: Vec<u8>,
    width: usize,
    height: usize,
) -> Result<Vec<PictureObservation>, String> {
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "hevc",
            "-i",
            "pipe:0",
        ])
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-fps_mode",
            "passthrough",
            "pipe:1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "reading H.265 pictures needs ffmpeg on the PATH (lockstep has no H.265 \
                 decoder of its own): {e}"
            )
        })?;
    let mut stdin = child.stdin.take().ok_or("ffmpeg has no stdin")?;
    // Written from another thread: ffmpeg's output fills its pipe while we write.
    let writer = std::thread::spawn(move || stdin.write_all(&stream));
    let mut stdout = child.stdout.take().ok_or("ffmpeg has no stdout")?;
    let mut frame = vec![0u8; width * height];
    let mut pictures = Vec::new();
    loop {
        match stdout.read_exact(&mut frame) {
            Ok(()) => pictures.push(observe_picture(0.0, &frame, width, width, height)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("reading ffmpeg's pictures: {e}")),
        }
    }
    // A write error is ffmpeg having quit: its status and message say why.
    let _ = writer.join();
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for ffmpeg: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ffmpeg could not decode the H.265 track ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(pictures)
}
