//! Codecs and formats for lockstep: G.711, Opus and AAC decoding, H.264 (OpenH264, Annex B, RTP
//! packetization), H.265 (RTP depacketization, SPS fields), MP4 reading, and the beep-flash test pattern that `sim-camera` shows and
//! `measure` reads.
#![forbid(unsafe_code)]

pub mod aac_config;
pub mod aac_rtp;
mod audio_decoder;
pub mod beep_flash;
mod bit_reader;
mod codec;
mod echo_canceller;
mod echo_reference;
pub mod fmtp;
pub mod g711;
pub mod g726;
pub mod h264;
mod h264_encoder;
pub mod h265;
pub mod h265_sps;
mod live_audio;
mod live_feed;
mod loop_delay;
pub mod mp4_reader;
pub mod pattern;
mod pattern_reader;
mod picture_reader;
mod push_audio;
mod raw_video;
mod source_codecs;
pub mod speaker_encoding;
pub mod webcodecs;

pub use audio_decoder::{AudioDecodeError, AudioDecoder};
pub use codec::Codec;
pub use echo_canceller::EchoCanceller;
pub use echo_reference::EchoReference;
pub use h264_encoder::{CodecError, DecodedLuma, EncodedFrame, H264Decoder, H264Encoder};
pub use live_audio::{
    LiveAudioEncoder, LiveAudioError, OpusPacket, LIVE_RATE_HZ, OPUS_FRAME_SAMPLES,
};
pub use live_feed::{FeedSubscription, LiveFrame, LiveMedia, SourceFeed, FEED_CAPACITY};
pub use pattern_reader::PatternReader;
pub use picture_reader::PictureReader;
pub use push_audio::{
    PcmFormat, Placement, PushAudio, PushAudioCounters, PushAudioError, PushAudioEvent,
    SampleFormat, MAX_QUEUE_SECS,
};
pub use raw_video::i420_from_rgb24;
pub use source_codecs::{
    AudioTrackDecoder, MediaPayload, MediaSource, Pcm, RtpAudioTrack, VideoTrack,
};
