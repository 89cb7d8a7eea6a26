//! Reads samples out of a progressive MP4 (a `moov` with sample tables), built on `mp4-atom`'s
//! box decoding. Presentation times honour composition offsets (`ctts`) and the first edit
//! (`elst`: encoder priming, B-frame delay). Every index into the file is checked: a malformed
//! file is an error that says where, never a panic (fuzzed: `fuzz/fuzz_targets/mp4_reader.rs`).

use crate::g711::G711Law;
use mp4_atom::{Atom, Codec, FourCC, Moof, Moov, StszSamples, Trak};

/// What a track carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackCodec {
    /// H.264 with its parameter sets and NAL length size.
    H264 {
        sps: Vec<Vec<u8>>,
        pps: Vec<Vec<u8>>,
        length_size: usize,
    },
    /// H.265 (`hvc1` or `hev1`) with its parameter sets and NAL length size.
    H265 {
        vps: Vec<Vec<u8>>,
        sps: Vec<Vec<u8>>,
        pps: Vec<Vec<u8>>,
        length_size: usize,
    },
    /// AAC with its AudioSpecificConfig.
    Aac {
        config: Vec<u8>,
        sample_rate: u32,
        channels: u16,
    },
    Opus {
        channels: u8,
        pre_skip: u16,
    },
    /// G.711 (QuickTime `alaw`/`ulaw` sample entries, as `ffmpeg -c copy` writes a camera's
    /// audio into MOV): one byte per sample.
    G711 {
        law: G711Law,
        sample_rate: u32,
        channels: u16,
    },
    Other(String),
}

/// One sample's place in the file and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRef {
    pub offset: usize,
    pub size: usize,
    /// Presentation time in the track's timescale, after the edit list.
    pub pts: i64,
    /// Decode duration in the track's timescale.
    pub duration: u32,
    pub sync: bool,
}

#[derive(Debug, Clone)]
pub struct Mp4Track {
    pub track_id: u32,
    pub handler: String,
    pub timescale: u32,
    pub codec: TrackCodec,
    pub samples: Vec<SampleRef>,
    /// The edit list's shift from decode to presentation time.
    edit_shift: i64,
    /// Where the next fragment's samples start when it has no `tfdt`.
    next_decode_time: i64,
}

impl Mp4Track {
    pub fn pts_secs(&self, sample: &SampleRef) -> f64 {
        sample.pts as f64 / f64::from(self.timescale.max(1))
    }
}

/// What is wrong with a file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    #[error("box at byte {offset}: {reason}")]
    Box { offset: usize, reason: String },
    #[error("no moov box: not an MP4 file")]
    NoMoov,
    #[error("moov: {0}")]
    Moov(String),
    #[error("moof at byte {offset}: {reason}")]
    Moof { offset: usize, reason: String },
    #[error("track {track}: {reason}")]
    Track { track: u32, reason: String },
    #[error("reading the file: {0}")]
    Io(String),
}

/// Random access to a file's bytes: the index is built from box headers, `moov` and `moof`
/// without reading the media data (an hour of recording is indexed, not loaded).
pub trait ByteSource {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Exactly `len` bytes at `offset` (the caller checked they lie in the file).
    fn read_at(&self, offset: usize, len: usize) -> Result<Vec<u8>, Mp4Error>;
}

impl ByteSource for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn read_at(&self, offset: usize, len: usize) -> Result<Vec<u8>, Mp4Error> {
        self.get(offset..offset + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Mp4Error::Io(format!("{len} bytes at {offset} beyond the end")))
    }
}

/// The tracks of a file and, for a fragmented one, where its last complete fragment ends.
#[derive(Debug, Clone)]
pub struct Mp4Index {
    pub tracks: Vec<Mp4Track>,
    /// Fragmented (`mvex` in `moov`, samples in `moof`/`mdat` pairs).
    pub fragmented: bool,
    /// Fragments whose `moof` and `mdat` are both complete.
    pub fragments: usize,
    /// The byte just past the last complete box (fragmented: past the last complete fragment's
    /// `mdat`). A file cut mid-write is longer than this; the rest is a partial tail.
    pub complete_len: usize,
}

/// A parsed file: its tracks and bytes.
#[derive(Debug, Clone)]
pub struct Mp4File {
    pub tracks: Vec<Mp4Track>,
    data: Vec<u8>,
}

impl Mp4File {
    pub fn parse(data: Vec<u8>) -> Result<Mp4File, Mp4Error> {
        let index = Mp4Index::read(data.as_slice())?;
        Ok(Mp4File {
            tracks: index.tracks,
            data,
        })
    }

    /// The bytes of a sample (checked against the file when the track was read).
    pub fn sample_data(&self, sample: &SampleRef) -> &[u8] {
        self.data
            .get(sample.offset..sample.offset + sample.size)
            .unwrap_or_default()
    }
}

impl Mp4Index {
    /// Indexes a progressive or fragmented MP4. Anything malformed before `moov` is an error
    /// saying where; in a fragmented file, a fragment cut short at the end (a crash mid-write)
    /// ends the index at the last complete fragment instead.
    pub fn read(source: &(impl ByteSource + ?Sized)) -> Result<Mp4Index, Mp4Error> {
        let file_len = source.len();
        let mut pos = 0usize;
        let mut moov: Option<Moov> = None;
        let mut tracks: Vec<Mp4Track> = Vec::new();
        let mut fragments = 0usize;
        let mut complete_len = 0usize;
        let mut pending_moof: Option<(usize, Moof)> = None;
        while pos + 8 <= file_len {
            let head = source.read_at(pos, 16.min(file_len - pos))?;
            let (kind, header, size) = match box_at(&head, 0, file_len - pos) {
                Ok(b) => b,
                // After `moov`: a fragment cut short by a crash; the index ends before it.
                Err(_) if moov.is_some() => break,
                Err(Mp4Error::Box { reason, .. }) => {
                    return Err(Mp4Error::Box {
                        offset: pos,
                        reason,
                    })
                }
                Err(e) => return Err(e),
            };
            match &kind {
                b"moov" if moov.is_none() => {
                    let body = source.read_at(pos + header, size - header)?;
                    let pruned = prune(&body, pos + header)?;
                    let decoded = Moov::decode_body(&mut pruned.as_slice())
                        .map_err(|e| Mp4Error::Moov(e.to_string()))?;
                    for trak in &decoded.trak {
                        tracks.push(read_track(trak, decoded.mvhd.timescale, file_len)?);
                    }
                    complete_len = pos + size;
                    let progressive = decoded.mvex.is_none();
                    moov = Some(decoded);
                    if progressive {
                        break;
                    }
                }
                b"moof" if moov.as_ref().is_some_and(|m| m.mvex.is_some()) => {
                    let body = source.read_at(pos + header, size - header)?;
                    let bad = |reason: String| Mp4Error::Moof {
                        offset: pos,
                        reason,
                    };
                    let pruned = prune(&body, pos + header)?;
                    let decoded = Moof::decode_body(&mut pruned.as_slice())
                        .map_err(|e| bad(e.to_string()))?;
                    pending_moof = Some((pos, decoded));
                }
                b"mdat" => {
                    if let (Some((moof_pos, moof)), Some(moov)) = (pending_moof.take(), &moov) {
                        read_fragment(moov, &moof, moof_pos, pos + size, &mut tracks)?;
                        fragments += 1;
                        complete_len = pos + size;
                    }
                }
                _ => {}
            }
            pos += size;
        }
        let Some(moov) = moov else {
            return Err(Mp4Error::NoMoov);
        };
        Ok(Mp4Index {
            tracks,
            fragmented: moov.mvex.is_some(),
            fragments,
            complete_len,
        })
    }
}

/// The box starting at `pos` of `data` (whose file has `remaining` bytes from `pos` on): its
/// kind, header length and total size.
fn box_at(data: &[u8], pos: usize, remaining: usize) -> Result<([u8; 4], usize, usize), Mp4Error> {
    let bad = |reason: String| Mp4Error::Box {
        offset: pos,
        reason,
    };
    let Some(head) = data.get(pos..pos + 8) else {
        return Err(bad("truncated box header".into()));
    };
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = [head[4], head[5], head[6], head[7]];
    let (header, size) = match size32 {
        0 => (8, remaining),
        1 => {
            let Some(large) = data.get(pos + 8..pos + 16) else {
                return Err(bad("truncated 64-bit size".into()));
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(large);
            (
                16,
                usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX),
            )
        }
        n => (8, n as usize),
    };
    if size < header || size > remaining {
        return Err(bad(format!(
            "{:?} claims {size} bytes, {remaining} remain",
            String::from_utf8_lossy(&kind),
        )));
    }
    Ok((kind, header, size))
}

/// Boxes whose children we walk.
const CONTAINERS: [&[u8; 4]; 10] = [
    b"moov", b"trak", b"edts", b"mdia", b"minf", b"stbl", b"dinf", b"mvex", b"moof", b"traf",
];
/// Boxes we read (and those the decoder requires). Everything else (sample groups, metadata,
/// user data…) is dropped before decoding: less to trust, and some of those decoders can be made
/// to allocate without bound by a crafted count (found by fuzzing).
const KEPT: [&[u8; 4]; 30] = [
    b"mvhd", b"trak", b"tkhd", b"edts", b"elst", b"mdia", b"mdhd", b"hdlr", b"minf", b"vmhd",
    b"smhd", b"dinf", b"dref", b"stbl", b"stsd", b"stts", b"ctts", b"stss", b"stsc", b"stsz",
    b"stco", b"co64", b"mvex", b"mehd", b"trex", b"mfhd", b"traf", b"tfhd", b"tfdt", b"trun",
];

/// A container body with only the kept boxes, recursively.
fn prune(body: &[u8], base: usize) -> Result<Vec<u8>, Mp4Error> {
    let mut out = Vec::with_capacity(body.len());
    let mut pos = 0usize;
    while pos + 8 <= body.len() {
        let (kind, header, size) = box_at(body, pos, body.len() - pos).map_err(|e| match e {
            Mp4Error::Box { offset, reason } => Mp4Error::Box {
                offset: base + offset,
                reason,
            },
            other => other,
        })?;
        if KEPT.contains(&&kind) {
            let child = &body[pos + header..pos + size];
            let child = if CONTAINERS.contains(&&kind) {
                prune(child, base + pos + header)?
            } else {
                child.to_vec()
            };
            out.extend_from_slice(&((child.len() + 8) as u32).to_be_bytes());
            out.extend_from_slice(&kind);
            out.extend_from_slice(&child);
        }
        pos += size;
    }
    Ok(out)
}

/// `trun` sample flag: not a sync sample (ISO/IEC 14496-12 §8.8.3.1).
const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

/// Appends one fragment's samples to their tracks. Offsets follow §8.8.7: a track run's data
/// offset counts from the `moof` start when `default-base-is-moof` (or nothing else) says so.
fn read_fragment(
    moov: &Moov,
    moof: &Moof,
    moof_pos: usize,
    mdat_end: usize,
    tracks: &mut [Mp4Track],
) -> Result<(), Mp4Error> {
    let bad = |reason: String| Mp4Error::Moof {
        offset: moof_pos,
        reason,
    };
    let mut next_data = moof_pos;
    for traf in &moof.traf {
        let id = traf.tfhd.track_id;
        let Some(track) = tracks.iter_mut().find(|t| t.track_id == id) else {
            return Err(bad(format!("traf for unknown track {id}")));
        };
        let trex = moov
            .mvex
            .as_ref()
            .and_then(|m| m.trex.iter().find(|t| t.track_id == id));
        let default_duration = traf
            .tfhd
            .default_sample_duration
            .or(trex.map(|t| t.default_sample_duration))
            .unwrap_or(0);
        let default_size = traf
            .tfhd
            .default_sample_size
            .or(trex.map(|t| t.default_sample_size))
            .unwrap_or(0);
        let default_flags = traf
            .tfhd
            .default_sample_flags
            .or(trex.map(|t| t.default_sample_flags))
            .unwrap_or(0);
        let base = match traf.tfhd.base_data_offset {
            Some(b) => usize::try_from(b).unwrap_or(usize::MAX),
            None if traf.tfhd.default_base_is_moof => moof_pos,
            None => next_data,
        };
        let mut dts = match &traf.tfdt {
            Some(tfdt) => i64::try_from(tfdt.base_media_decode_time)
                .map_err(|_| bad(format!("track {id}: decode time out of range")))?,
            None => track.next_decode_time,
        };
        let mut data = base;
        for trun in &traf.trun {
            if let Some(offset) = trun.data_offset {
                data = base.checked_add_signed(offset as isize).ok_or_else(|| {
                    bad(format!("track {id}: data offset {offset} before the file"))
                })?;
            }
            let count = trun.samples.len();
            if count.saturating_mul(default_size.max(1) as usize) > mdat_end {
                return Err(bad(format!(
                    "track {id}: {count} samples cannot fit before byte {mdat_end}"
                )));
            }
            for (i, entry) in trun.samples.iter().enumerate() {
                let size = entry.size.unwrap_or(default_size) as usize;
                let duration = entry.duration.unwrap_or(default_duration);
                let flags = entry.flags.unwrap_or(default_flags);
                if data.checked_add(size).is_none_or(|end| end > mdat_end) {
                    return Err(bad(format!(
                        "track {id}: sample {i} at byte {data} (+{size}) lies outside its fragment"
                    )));
                }
                track.samples.push(SampleRef {
                    offset: data,
                    size,
                    pts: dts
                        .saturating_add(entry.cts.unwrap_or(0))
                        .saturating_add(track.edit_shift),
                    duration,
                    sync: flags & SAMPLE_IS_NON_SYNC == 0,
                });
                data += size;
                dts = dts.saturating_add(i64::from(duration));
            }
        }
        track.next_decode_time = dts;
        next_data = data;
    }
    Ok(())
}

/// An H.265 track's codec from its decoder configuration record (`hvcC`'s body; Matroska's
/// `CodecPrivate` for `V_MPEGH/ISO/HEVC`).
pub fn h265_from_configuration_record(record: &[u8]) -> Result<TrackCodec, String> {
    let hvcc = mp4_atom::Hvcc::decode_body(&mut &record[..])
        .map_err(|e| format!("the HEVC configuration record cannot be read: {e}"))?;
    Ok(h265_codec(&hvcc))
}

fn h265_codec(hvcc: &mp4_atom::Hvcc) -> TrackCodec {
    let sets = |nal_type: u8| -> Vec<Vec<u8>> {
        hvcc.arrays
            .iter()
            .filter(|a| a.nal_unit_type == nal_type)
            .flat_map(|a| a.nalus.iter().cloned())
            .collect()
    };
    TrackCodec::H265 {
        vps: sets(crate::h265::NAL_VPS),
        sps: sets(crate::h265::NAL_SPS),
        pps: sets(crate::h265::NAL_PPS),
        length_size: usize::from(hvcc.length_size_minus_one) + 1,
    }
}

fn read_track(trak: &Trak, movie_timescale: u32, file_len: usize) -> Result<Mp4Track, Mp4Error> {
    let track_id = trak.tkhd.track_id;
    let bad = |reason: String| Mp4Error::Track {
        track: track_id,
        reason,
    };
    let stbl = &trak.mdia.minf.stbl;
    let codec = match stbl.stsd.codecs.first() {
        Some(Codec::Avc1(avc1)) => TrackCodec::H264 {
            sps: avc1.avcc.sequence_parameter_sets.clone(),
            pps: avc1.avcc.picture_parameter_sets.clone(),
            length_size: usize::from(avc1.avcc.length_size),
        },
        Some(Codec::Hvc1(mp4_atom::Hvc1 { hvcc, .. }))
        | Some(Codec::Hev1(mp4_atom::Hev1 { hvcc, .. })) => h265_codec(hvcc),
        Some(Codec::Mp4a(mp4a)) => {
            let config = mp4a
                .esds
                .es_desc
                .dec_config
                .dec_specific
                .as_ref()
                .map(|d| d.raw.clone())
                .unwrap_or_default();
            TrackCodec::Aac {
                config,
                sample_rate: u32::from(mp4a.audio.sample_rate.integer()),
                channels: mp4a.audio.channel_count,
            }
        }
        Some(Codec::Opus(opus)) => TrackCodec::Opus {
            channels: opus.dops.output_channel_count,
            pre_skip: opus.dops.pre_skip,
        },
        Some(Codec::Unknown(four_cc, body))
            if [FourCC::new(b"alaw"), FourCC::new(b"ulaw")].contains(four_cc) =>
        {
            let law = if *four_cc == FourCC::new(b"alaw") {
                G711Law::ALaw
            } else {
                G711Law::MuLaw
            };
            // AudioSampleEntry after the 8-byte SampleEntry header: version, revision, vendor,
            // channel count (16..18), sample size, compression id, packet size, rate 16.16
            // (24..28).
            let field = |at: usize, len: usize| body.get(at..at + len);
            let (Some(channels), Some(rate)) = (field(16, 2), field(24, 4)) else {
                return Err(bad(format!("a {}-byte G.711 sample entry", body.len())));
            };
            TrackCodec::G711 {
                law,
                sample_rate: u32::from(u16::from_be_bytes([rate[0], rate[1]])),
                channels: u16::from_be_bytes([channels[0], channels[1]]),
            }
        }
        Some(other) => TrackCodec::Other(format!("{other:?}").chars().take(40).collect()),
        None => return Err(bad("no sample description".into())),
    };

    // Sizes.
    let sizes: Vec<usize> = match &stbl.stsz.samples {
        StszSamples::Identical { count, size } => {
            // Every sample lies in the file: a count beyond that is a lie, not an allocation.
            let (count, size) = (*count as usize, *size as usize);
            if count.saturating_mul(size.max(1)) > file_len {
                return Err(bad(format!(
                    "{count} samples of {size} bytes cannot fit in a {file_len}-byte file"
                )));
            }
            vec![size; count]
        }
        StszSamples::Different { sizes } => sizes.iter().map(|&s| s as usize).collect(),
    };
    let count = sizes.len();
    // Chunk offsets.
    let chunks: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(stco), _) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, Some(co64)) => co64.entries.clone(),
        (None, None) => return Err(bad("no chunk offsets".into())),
    };
    // Sample → chunk (stsc), giving each sample's file offset.
    let mut offsets = Vec::with_capacity(count);
    let entries = &stbl.stsc.entries;
    let mut sample = 0usize;
    for (i, entry) in entries.iter().enumerate() {
        let first = entry.first_chunk.max(1) as usize - 1;
        let last = entries
            .get(i + 1)
            .map_or(chunks.len(), |next| next.first_chunk.max(1) as usize - 1);
        for &chunk_offset in chunks
            .get(first..last.min(chunks.len()))
            .unwrap_or_default()
        {
            let mut offset = usize::try_from(chunk_offset).unwrap_or(usize::MAX);
            for _ in 0..entry.samples_per_chunk {
                if sample == count {
                    break;
                }
                offsets.push(offset);
                offset = offset.saturating_add(sizes[sample]);
                sample += 1;
            }
        }
    }
    if offsets.len() != count {
        return Err(bad(format!(
            "chunk tables place {} of {count} samples",
            offsets.len()
        )));
    }
    // Decode times (stts) and composition offsets (ctts).
    let mut dts = Vec::with_capacity(count);
    let mut deltas = Vec::with_capacity(count);
    let mut t: i64 = 0;
    for entry in &stbl.stts.entries {
        for _ in 0..entry.sample_count {
            if dts.len() == count {
                break;
            }
            dts.push(t);
            deltas.push(entry.sample_delta);
            t = t.saturating_add(i64::from(entry.sample_delta));
        }
    }
    if dts.len() != count {
        return Err(bad(format!("stts times {} of {count} samples", dts.len())));
    }
    let mut cts = vec![0i64; count];
    if let Some(ctts) = &stbl.ctts {
        let mut i = 0;
        for entry in &ctts.entries {
            let run = (entry.sample_count as usize).min(count - i);
            cts[i..i + run].fill(entry.sample_offset);
            i += run;
        }
    }
    // The edit list: empty edits delay the track's start (in the movie's timescale); the first
    // real edit's media time is where presentation starts (priming and B-frame delay skipped).
    let timescale = trak.mdia.mdhd.timescale;
    let mut edit_shift: i64 = 0;
    if let Some(elst) = trak.edts.as_ref().and_then(|e| e.elst.as_ref()) {
        for entry in &elst.entries {
            match entry.media_time {
                None => {
                    let delay = i128::from(entry.segment_duration) * i128::from(timescale)
                        / i128::from(movie_timescale.max(1));
                    edit_shift += i64::try_from(delay).unwrap_or(0);
                }
                Some(media_time) => {
                    edit_shift -= i64::try_from(media_time).unwrap_or(0);
                    break;
                }
            }
        }
    }
    let sync: Option<Vec<u32>> = stbl.stss.as_ref().map(|s| s.entries.clone());
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let (offset, size) = (offsets[i], sizes[i]);
        if offset.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(bad(format!(
                "sample {i} at byte {offset} (+{size}) lies outside the file"
            )));
        }
        samples.push(SampleRef {
            offset,
            size,
            pts: dts[i] + cts[i] + edit_shift,
            duration: deltas[i],
            sync: sync
                .as_ref()
                .is_none_or(|s| s.binary_search(&(i as u32 + 1)).is_ok()),
        });
    }
    Ok(Mp4Track {
        track_id,
        handler: trak.mdia.hdlr.handler.to_string(),
        timescale,
        codec,
        samples,
        edit_shift,
        next_decode_time: t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_mp4_with_a_place() {
        assert_eq!(Mp4File::parse(vec![]).unwrap_err(), Mp4Error::NoMoov);
        let mut lying = vec![0, 0, 0x10, 0, b'f', b't', b'y', b'p'];
        lying.extend_from_slice(&[0; 8]);
        let err = Mp4File::parse(lying).unwrap_err();
        assert!(err.to_string().contains("byte 0"), "{err}");
        let mut bad_moov = vec![0, 0, 0, 12, b'm', b'o', b'o', b'v'];
        bad_moov.extend_from_slice(&[1, 2, 3, 4]);
        assert!(matches!(Mp4File::parse(bad_moov), Err(Mp4Error::Moov(_))));
    }

    #[test]
    fn boxes_we_do_not_read_are_dropped_before_decoding() {
        // A moov holding only a udta: pruned to nothing, then refused cleanly.
        let mut moov = vec![0, 0, 0, 20, b'm', b'o', b'o', b'v'];
        moov.extend_from_slice(&[0, 0, 0, 12, b'u', b'd', b't', b'a', 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(prune(&moov[8..], 8).unwrap(), Vec::<u8>::new());
        assert!(matches!(Mp4File::parse(moov), Err(Mp4Error::Moov(_))));
        // A child box that overruns its parent is reported with its absolute offset.
        let mut overrun = vec![0, 0, 0, 16, b'm', b'o', b'o', b'v'];
        overrun.extend_from_slice(&[0, 0, 0, 99, b'm', b'v', b'h', b'd']);
        let err = Mp4File::parse(overrun).unwrap_err();
        assert!(err.to_string().contains("byte 8"), "{err}");
    }
}
