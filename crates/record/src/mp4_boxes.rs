//! The MP4 boxes lockstep writes, on `mp4-atom`: one track description serves both the
//! fragmented recording segments (empty sample tables + `mvex`) and the progressive export
//! (full sample tables). Video is track 1 at 90 kHz, audio (Opus) track 2 at 48 kHz.

use lockstep_media::h265::{NAL_PPS, NAL_SPS, NAL_VPS};
use lockstep_media::h265_sps::H265Sps;
use mp4_atom::{
    Audio, Avc1, Avcc, Co64, Codec, Dinf, Dops, Dref, Edts, Elst, ElstEntry, Encode, FourCC, Ftyp,
    Hdlr, Hvc1, HvcCArray, Hvcc, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mvex, Mvhd, Opus, Smhd, Stbl,
    Stco, Stsc, StscEntry, Stsd, Stss, Stsz, StszSamples, Stts, SttsEntry, Tfdt, Tfhd, Tkhd, Traf,
    Trex, Trun, TrunEntry, TrunSamples, Url, Visual, Vmhd,
};

pub const VIDEO_TRACK: u32 = 1;
pub const AUDIO_TRACK: u32 = 2;
pub const VIDEO_TIMESCALE: u32 = 90_000;
pub const AUDIO_TIMESCALE: u32 = 48_000;
/// The movie timescale (edit lists and durations in `mvhd`/`tkhd`).
const MOVIE_TIMESCALE: u32 = 1_000;
/// `trun` sample flags: a sync sample depends on nothing; others are "not sync".
const SYNC_FLAGS: u32 = 0x0200_0000;
const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// What the video track carries: its codec with the parameter sets, and the picture size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    pub parameter_sets: ParameterSets,
    pub width: u16,
    pub height: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterSets {
    /// H.264 (`avc1` + `avcC`).
    H264 { sps: Vec<u8>, pps: Vec<u8> },
    /// H.265 (`hvc1` + `hvcC`): the SPS's fields fill the record's header.
    H265 {
        vps: Vec<u8>,
        sps: Vec<u8>,
        pps: Vec<u8>,
        fields: H265Sps,
    },
}

/// One sample as a table row: its size, decode duration and whether it is a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleEntry {
    pub size: u32,
    pub duration: u32,
    pub sync: bool,
}

/// A track's samples for a progressive file: entries in order, each at its own file offset.
#[derive(Debug, Clone, Default)]
pub struct TrackTable {
    pub samples: Vec<SampleEntry>,
    pub offsets: Vec<u64>,
    /// Where the track's first sample is presented, in the track's timescale from the movie
    /// start: later (an empty edit: audio that starts after the first video frame) or earlier
    /// (skipped by the edit list: audio pre-roll that primes the decoder but is not played).
    pub start_tick: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("writing MP4 boxes: {0}")]
pub struct BoxError(String);

fn encode(atom: &impl Encode, out: &mut Vec<u8>) -> Result<(), BoxError> {
    atom.encode(out).map_err(|e| BoxError(e.to_string()))
}

fn ftyp() -> Ftyp {
    Ftyp {
        major_brand: FourCC::new(b"isom"),
        minor_version: 512,
        compatible_brands: [b"isom", b"iso6", b"iso2", b"avc1", b"mp41"]
            .into_iter()
            .map(FourCC::new)
            .collect(),
    }
}

/// The start of every segment file: `ftyp` + `moov` with empty tables and `mvex`. The audio
/// track's media time starts `audio_preroll` ticks before the picture; its edit list skips them.
pub fn init_segment(
    video: &VideoConfig,
    audio: bool,
    audio_preroll: i64,
) -> Result<Vec<u8>, BoxError> {
    let mut tracks = vec![video_trak(video, &TrackTable::default())?];
    if audio {
        tracks.push(audio_trak(&TrackTable {
            start_tick: -audio_preroll,
            ..Default::default()
        }));
    }
    let mut trex = vec![trex(VIDEO_TRACK)];
    if audio {
        trex.push(self::trex(AUDIO_TRACK));
    }
    let moov = Moov {
        mvhd: mvhd(0),
        mvex: Some(Mvex { mehd: None, trex }),
        trak: tracks,
        ..Default::default()
    };
    let mut out = Vec::new();
    encode(&ftyp(), &mut out)?;
    encode(&moov, &mut out)?;
    Ok(out)
}

/// A progressive file's `ftyp` + `moov`, its sample offsets already final.
pub fn progressive_header(
    video: &VideoConfig,
    video_table: &TrackTable,
    audio_table: Option<&TrackTable>,
) -> Result<Vec<u8>, BoxError> {
    let mut trak = vec![video_trak(video, video_table)?];
    if let Some(table) = audio_table {
        trak.push(audio_trak(table));
    }
    let duration = [
        movie_duration(video_table, VIDEO_TIMESCALE),
        audio_table.map_or(0, |t| movie_duration(t, AUDIO_TIMESCALE)),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let moov = Moov {
        mvhd: mvhd(duration),
        trak,
        ..Default::default()
    };
    let mut out = Vec::new();
    encode(&ftyp(), &mut out)?;
    encode(&moov, &mut out)?;
    Ok(out)
}

/// The `mdat` box header for `payload_len` bytes (64-bit size: exports can pass 4 GiB).
pub fn mdat_header(payload_len: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&1u32.to_be_bytes());
    h[4..8].copy_from_slice(b"mdat");
    h[8..].copy_from_slice(&(payload_len + 16).to_be_bytes());
    h
}

/// One track's share of a fragment.
#[derive(Debug, Clone)]
pub struct FragmentRun<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale since the segment start.
    pub base_decode_time: u64,
    pub samples: Vec<SampleEntry>,
    pub data: Vec<&'a [u8]>,
}

/// `moof` + `mdat` for one fragment; each run's data follows the previous run's in `mdat`.
pub fn fragment(sequence: u32, runs: &[FragmentRun<'_>]) -> Result<Vec<u8>, BoxError> {
    let build = |offsets: &[i32]| Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: runs
            .iter()
            .zip(offsets)
            .map(|(run, &offset)| Traf {
                tfhd: Tfhd {
                    track_id: run.track_id,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: run.base_decode_time,
                }),
                trun: vec![Trun {
                    data_offset: Some(offset),
                    samples: TrunSamples::Explicit(
                        run.samples
                            .iter()
                            .map(|s| TrunEntry {
                                duration: Some(s.duration),
                                size: Some(s.size),
                                flags: Some(if s.sync { SYNC_FLAGS } else { NON_SYNC_FLAGS }),
                                cts: None,
                            })
                            .collect(),
                    ),
                }],
                ..Default::default()
            })
            .collect(),
    };
    // The offsets do not change the moof's size: measure it once with zeros, then fill them in.
    let mut moof = Vec::new();
    encode(&build(&vec![0; runs.len()]), &mut moof)?;
    let mut offsets = Vec::with_capacity(runs.len());
    let mut at = moof.len() + 8;
    for run in runs {
        offsets.push(i32::try_from(at).map_err(|_| BoxError("fragment over 2 GiB".into()))?);
        at += run.data.iter().map(|d| d.len()).sum::<usize>();
    }
    moof.clear();
    encode(&build(&offsets), &mut moof)?;
    let payload = at - moof.len() - 8;
    let mut out = Vec::with_capacity(at);
    out.extend_from_slice(&moof);
    out.extend_from_slice(
        &u32::try_from(payload + 8)
            .map_err(|_| BoxError("fragment over 4 GiB".into()))?
            .to_be_bytes(),
    );
    out.extend_from_slice(b"mdat");
    for run in runs {
        for d in &run.data {
            out.extend_from_slice(d);
        }
    }
    Ok(out)
}

fn mvhd(duration: u64) -> Mvhd {
    Mvhd {
        timescale: MOVIE_TIMESCALE,
        duration,
        rate: 1.into(),
        volume: 1.into(),
        next_track_id: AUDIO_TRACK + 1,
        ..Default::default()
    }
}

fn trex(track_id: u32) -> Trex {
    Trex {
        track_id,
        default_sample_description_index: 1,
        ..Default::default()
    }
}

fn movie_duration(table: &TrackTable, timescale: u32) -> u64 {
    let media: u64 = table.samples.iter().map(|s| u64::from(s.duration)).sum();
    (media as i64 + table.start_tick).max(0) as u64 * u64::from(MOVIE_TIMESCALE)
        / u64::from(timescale)
}

/// The `hvcC` record of ISO/IEC 14496-15 8.3.3: the SPS's profile, tier and level, and the
/// three parameter sets (complete: samples need no others).
fn hvcc(vps: &[u8], sps: &[u8], pps: &[u8], fields: &H265Sps) -> Hvcc {
    let array = |nal_unit_type, nal: &[u8]| HvcCArray {
        completeness: true,
        nal_unit_type,
        nalus: vec![nal.to_vec()],
    };
    Hvcc {
        configuration_version: 1,
        general_profile_space: fields.profile_space,
        general_tier_flag: fields.tier_flag,
        general_profile_idc: fields.profile_idc,
        general_profile_compatibility_flags: fields.profile_compatibility_flags,
        general_constraint_indicator_flags: fields.constraint_indicator_flags,
        general_level_idc: fields.level_idc,
        min_spatial_segmentation_idc: 0,
        parallelism_type: 0,
        chroma_format_idc: fields.chroma_format_idc,
        bit_depth_luma_minus8: fields.bit_depth_luma_minus8,
        bit_depth_chroma_minus8: fields.bit_depth_chroma_minus8,
        avg_frame_rate: 0,
        constant_frame_rate: 0,
        num_temporal_layers: fields.max_sub_layers_minus1 + 1,
        temporal_id_nested: fields.temporal_id_nesting,
        length_size_minus_one: 3,
        arrays: vec![
            array(NAL_VPS, vps),
            array(NAL_SPS, sps),
            array(NAL_PPS, pps),
        ],
    }
}

fn video_trak(video: &VideoConfig, table: &TrackTable) -> Result<mp4_atom::Trak, BoxError> {
    let visual = Visual {
        data_reference_index: 1,
        width: video.width,
        height: video.height,
        ..Default::default()
    };
    let codec = match &video.parameter_sets {
        ParameterSets::H264 { sps, pps } => Codec::Avc1(Avc1 {
            visual,
            avcc: Avcc::new(sps, pps).map_err(|e| BoxError(format!("avcC: {e}")))?,
            btrt: None,
            colr: None,
            pasp: None,
            taic: None,
            fiel: None,
            spatial: None,
        }),
        ParameterSets::H265 {
            vps,
            sps,
            pps,
            fields,
        } => Codec::Hvc1(Hvc1 {
            visual,
            hvcc: hvcc(vps, sps, pps, fields),
            ..Default::default()
        }),
    };
    let mut trak = trak(VIDEO_TRACK, b"vide", VIDEO_TIMESCALE, codec, table);
    trak.tkhd.width = video.width.into();
    trak.tkhd.height = video.height.into();
    trak.mdia.minf.vmhd = Some(Vmhd::default());
    let syncs: Vec<u32> = (1..)
        .zip(&table.samples)
        .filter(|(_, s)| s.sync)
        .map(|(i, _)| i)
        .collect();
    if syncs.len() < table.samples.len() {
        trak.mdia.minf.stbl.stss = Some(Stss { entries: syncs });
    }
    Ok(trak)
}

fn audio_trak(table: &TrackTable) -> mp4_atom::Trak {
    let codec = Codec::Opus(Opus {
        audio: Audio {
            data_reference_index: 1,
            channel_count: 1,
            sample_size: 16,
            sample_rate: 48_000.into(),
        },
        // Packets are stamped where their decoded output belongs (the encoder lookahead is
        // already taken off the timestamps), so nothing is skipped at the start.
        dops: Dops {
            output_channel_count: 1,
            pre_skip: 0,
            input_sample_rate: 48_000,
            output_gain: 0,
            channel_mapping: None,
        },
        btrt: None,
    });
    let mut trak = trak(AUDIO_TRACK, b"soun", AUDIO_TIMESCALE, codec, table);
    trak.tkhd.volume = 1.into();
    trak.tkhd.alternate_group = 1;
    trak.mdia.minf.smhd = Some(Smhd::default());
    trak
}

fn trak(
    track_id: u32,
    handler: &[u8; 4],
    timescale: u32,
    codec: Codec,
    table: &TrackTable,
) -> mp4_atom::Trak {
    let media_duration: u64 = table.samples.iter().map(|s| u64::from(s.duration)).sum();
    let movie = |ticks: u64| ticks * u64::from(MOVIE_TIMESCALE) / u64::from(timescale);
    let skipped = (-table.start_tick).max(0) as u64;
    let presented = media_duration.saturating_sub(skipped);
    let mut edits = Vec::new();
    if table.start_tick > 0 {
        edits.push(ElstEntry {
            segment_duration: movie(table.start_tick as u64),
            media_time: None,
            media_rate: 1.into(),
        });
    }
    if table.start_tick != 0 {
        edits.push(ElstEntry {
            segment_duration: movie(presented),
            media_time: Some(skipped),
            media_rate: 1.into(),
        });
    }
    let edts = (!edits.is_empty()).then_some(Edts {
        elst: Some(Elst { entries: edits }),
    });
    let mut stts: Vec<SttsEntry> = Vec::new();
    for s in &table.samples {
        match stts.last_mut() {
            Some(last) if last.sample_delta == s.duration => last.sample_count += 1,
            _ => stts.push(SttsEntry {
                sample_count: 1,
                sample_delta: s.duration,
            }),
        }
    }
    // One sample per chunk: every sample has its own offset (exports interleave by time).
    let (stco, co64) = if table.offsets.iter().all(|&o| o <= u64::from(u32::MAX)) {
        let entries = table.offsets.iter().map(|&o| o as u32).collect();
        (Some(Stco { entries }), None)
    } else {
        (
            None,
            Some(Co64 {
                entries: table.offsets.clone(),
            }),
        )
    };
    let stsc = if table.samples.is_empty() {
        Stsc::default()
    } else {
        Stsc {
            entries: vec![StscEntry {
                first_chunk: 1,
                samples_per_chunk: 1,
                sample_description_index: 1,
            }],
        }
    };
    mp4_atom::Trak {
        tkhd: Tkhd {
            track_id,
            enabled: true,
            in_movie: true,
            duration: movie(presented + table.start_tick.max(0) as u64),
            ..Default::default()
        },
        edts,
        mdia: Mdia {
            mdhd: Mdhd {
                timescale,
                duration: media_duration,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(handler),
                name: "lockstep".into(),
            },
            minf: Minf {
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![Url {
                            location: String::new(),
                        }
                        .into()],
                    },
                },
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![codec],
                    },
                    stts: Stts { entries: stts },
                    stsc,
                    stsz: Stsz {
                        samples: StszSamples::Different {
                            sizes: table.samples.iter().map(|s| s.size).collect(),
                        },
                    },
                    stco,
                    co64,
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_media::mp4_reader::{Mp4Index, TrackCodec};

    /// OpenH264's 320x240 constrained-baseline parameter sets.
    const SPS: [u8; 13] = [103, 66, 192, 20, 140, 104, 20, 31, 32, 30, 17, 8, 212];
    const PPS: [u8; 4] = [104, 206, 60, 128];

    /// A two-fragment file as the recorder lays it out (also the fuzzer's seed:
    /// `fuzz/seeds/mp4_reader/fragmented.mp4`).
    pub(crate) fn tiny_segment() -> Vec<u8> {
        let video = VideoConfig {
            parameter_sets: ParameterSets::H264 {
                sps: SPS.to_vec(),
                pps: PPS.to_vec(),
            },
            width: 320,
            height: 240,
        };
        let mut file = init_segment(&video, true, 0).unwrap();
        let frame = [0u8, 0, 0, 6, 0x65, 1, 2, 3, 4, 5];
        let packet = [0xf8u8, 0xff, 0xfe];
        for (sequence, start) in [(1u32, 0u64), (2, 2)] {
            let runs = [
                FragmentRun {
                    track_id: VIDEO_TRACK,
                    base_decode_time: start * 3000,
                    samples: [start == 0, false]
                        .map(|sync| SampleEntry {
                            size: 10,
                            duration: 3000,
                            sync,
                        })
                        .to_vec(),
                    data: vec![&frame, &frame],
                },
                FragmentRun {
                    track_id: AUDIO_TRACK,
                    base_decode_time: start * 1600,
                    samples: vec![
                        SampleEntry {
                            size: 3,
                            duration: 960,
                            sync: true,
                        };
                        3
                    ],
                    data: vec![&packet, &packet, &packet],
                },
            ];
            file.extend_from_slice(&fragment(sequence, &runs).unwrap());
        }
        file
    }

    #[test]
    fn fragments_read_back_with_their_times_offsets_and_keyframes() {
        let file = tiny_segment();
        let index = Mp4Index::read(file.as_slice()).unwrap();
        assert!(index.fragmented);
        assert_eq!((index.fragments, index.complete_len), (2, file.len()));
        let video = &index.tracks[0];
        assert_eq!(video.timescale, VIDEO_TIMESCALE);
        assert!(matches!(&video.codec, TrackCodec::H264 { sps, .. } if sps[0] == SPS.to_vec()));
        let times: Vec<i64> = video.samples.iter().map(|s| s.pts).collect();
        assert_eq!(times, [0, 3000, 6000, 9000]);
        let keyframes: Vec<bool> = video.samples.iter().map(|s| s.sync).collect();
        assert_eq!(keyframes, [true, false, false, false]);
        for s in &video.samples {
            assert_eq!(
                &file[s.offset..s.offset + s.size],
                &[0, 0, 0, 6, 0x65, 1, 2, 3, 4, 5]
            );
        }
        let audio = &index.tracks[1];
        let times: Vec<i64> = audio.samples.iter().map(|s| s.pts).collect();
        assert_eq!(times, [0, 960, 1920, 3200, 4160, 5120]);
        for s in &audio.samples {
            assert_eq!(&file[s.offset..s.offset + s.size], &[0xf8, 0xff, 0xfe]);
        }
        // Cut anywhere inside the second fragment: the first one still reads, and the index
        // says where the complete part ends.
        let first_end = {
            let mut cut = file.clone();
            cut.truncate(file.len() - 1);
            Mp4Index::read(cut.as_slice()).unwrap().complete_len
        };
        for len in first_end..file.len() {
            let index = Mp4Index::read(&file[..len]).unwrap();
            assert_eq!(
                (index.fragments, index.complete_len),
                (1, first_end),
                "cut at {len}"
            );
            assert_eq!(index.tracks[0].samples.len(), 2);
        }
        if let Ok(dir) = std::env::var("LOCKSTEP_WRITE_FUZZ_SEED") {
            std::fs::write(std::path::Path::new(&dir).join("fragmented.mp4"), &file).unwrap();
        }
    }
}
