//! A source's synchronized output, fanned out to every sink (WebRTC viewers, later recorders).
//!
//! Frames are already stamped on the source's output timeline: `due` is the instant the
//! frame is due at the output (capture time + playout delay, the same mapping for every track of
//! the source), `pts` its media time on the outgoing clock. A new subscriber also gets the video
//! since the last keyframe, so a viewer starts at once instead of waiting up to a GOP; a
//! subscriber that falls behind the broadcast is told how much it missed and must wait for the
//! next keyframe (it never grows a queue).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::broadcast;

use crate::Codec;

/// Frames a subscriber may fall behind before it lags (about 4 s of 30 fps video plus audio).
pub const FEED_CAPACITY: usize = 512;
/// The keyframe cache gives up (until the next keyframe) beyond these: a camera with a
/// minutes-long GOP must not hold megabytes per source.
const GOP_CACHE_MAX_FRAMES: usize = 300;
const GOP_CACHE_MAX_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveMedia {
    /// A video access unit (H.264 or H.265) in Annex B; `pts` in 90 kHz ticks.
    Video { codec: Codec, keyframe: bool },
    /// One Opus frame; `pts` in 48 kHz ticks.
    Opus,
}

#[derive(Debug, Clone)]
pub struct LiveFrame {
    pub media: LiveMedia,
    /// When this frame is due at the output (a local monotonic instant; WebRTC viewers map it
    /// to the sender-report wallclock).
    pub due: Instant,
    pub pts: i64,
    pub data: Arc<[u8]>,
}

impl LiveFrame {
    pub fn is_keyframe(&self) -> bool {
        matches!(self.media, LiveMedia::Video { keyframe: true, .. })
    }

    pub fn is_video(&self) -> bool {
        matches!(self.media, LiveMedia::Video { .. })
    }
}

/// What a new subscriber gets: the cached video since the last keyframe, then the live frames.
#[derive(Debug)]
pub struct FeedSubscription {
    pub cached: Vec<LiveFrame>,
    pub live: broadcast::Receiver<LiveFrame>,
    /// Set for a sink that ignores audio; declared after `live` so the receiver is gone
    /// before the count drops (the audio count may briefly read high, never low).
    _video_only: Option<VideoOnly>,
}

/// Counts a video-only subscription while it lives.
#[derive(Debug)]
struct VideoOnly(Arc<AtomicUsize>);

impl Drop for VideoOnly {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct FeedState {
    gop: Vec<LiveFrame>,
    gop_bytes: usize,
    /// What the source's video is, once known (a viewer negotiates it before any frame).
    video_codec: Option<Codec>,
}

/// One source's fan-out. The lock is held only to append to the keyframe cache and to
/// subscribe, so a subscriber's cache snapshot and live stream meet without a gap or a repeat.
#[derive(Debug)]
pub struct SourceFeed {
    tx: broadcast::Sender<LiveFrame>,
    state: Mutex<FeedState>,
    video_only: Arc<AtomicUsize>,
}

impl Default for SourceFeed {
    fn default() -> Self {
        SourceFeed::new()
    }
}

impl SourceFeed {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        SourceFeed {
            tx,
            state: Mutex::new(FeedState {
                gop: Vec::new(),
                gop_bytes: 0,
                video_codec: None,
            }),
            video_only: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn publish(&self, frame: LiveFrame) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let LiveMedia::Video { codec, keyframe } = frame.media {
            state.video_codec = Some(codec);
            if keyframe {
                state.gop.clear();
                state.gop_bytes = 0;
            }
            if !state.gop.is_empty() || keyframe {
                state.gop_bytes += frame.data.len();
                state.gop.push(frame.clone());
                if state.gop.len() > GOP_CACHE_MAX_FRAMES || state.gop_bytes > GOP_CACHE_MAX_BYTES {
                    state.gop.clear();
                    state.gop_bytes = 0;
                }
            }
        }
        // No subscribers is not an error: the frame just has no one to go to.
        let _ = self.tx.send(frame);
    }

    /// The source restarted (a new camera session): cached frames belong to the old timeline.
    pub fn clear_cache(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.gop.clear();
        state.gop_bytes = 0;
    }

    /// The source's video codec, as its front end announced it (a camera's DESCRIBE) or its
    /// last frame was; `None` before either.
    pub fn video_codec(&self) -> Option<Codec> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .video_codec
    }

    pub fn set_video_codec(&self, codec: Codec) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .video_codec = Some(codec);
    }

    pub fn subscribe(&self) -> FeedSubscription {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        FeedSubscription {
            cached: state.gop.clone(),
            live: self.tx.subscribe(),
            _video_only: None,
        }
    }

    /// A subscription for a sink that ignores audio (a silent recording, a viewer of a camera
    /// whose live audio is off): it does not keep the audio transcoder running.
    pub fn subscribe_video_only(&self) -> FeedSubscription {
        let mut subscription = self.subscribe();
        self.video_only.fetch_add(1, Ordering::SeqCst);
        subscription._video_only = Some(VideoOnly(self.video_only.clone()));
        subscription
    }

    /// Sinks currently subscribed.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Sinks that want audio (it is transcoded only while this is above zero).
    pub fn audio_subscribers(&self) -> usize {
        self.tx
            .receiver_count()
            .saturating_sub(self.video_only.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: LiveMedia = LiveMedia::Video {
        codec: Codec::H264,
        keyframe: false,
    };
    const KEYFRAME: LiveMedia = LiveMedia::Video {
        codec: Codec::H264,
        keyframe: true,
    };

    fn frame(media: LiveMedia, pts: i64) -> LiveFrame {
        LiveFrame {
            media,
            due: Instant::now(),
            pts,
            data: Arc::from(vec![0u8; 10]),
        }
    }

    #[test]
    fn a_new_subscriber_gets_the_gop_then_live_frames_without_gap_or_repeat() {
        let feed = SourceFeed::new();
        feed.publish(frame(VIDEO, 0)); // before any keyframe
        feed.publish(frame(KEYFRAME, 1));
        feed.publish(frame(LiveMedia::Opus, 2));
        feed.publish(frame(VIDEO, 3));
        let mut sub = feed.subscribe();
        feed.publish(frame(VIDEO, 4));
        let cached: Vec<i64> = sub.cached.iter().map(|f| f.pts).collect();
        assert_eq!(cached, vec![1, 3], "video since the keyframe only");
        assert_eq!(feed.video_codec(), Some(Codec::H264));
        assert_eq!(sub.live.try_recv().unwrap().pts, 4);
        assert!(sub.live.try_recv().is_err());
        assert_eq!(feed.subscribers(), 1);
        let silent = feed.subscribe_video_only();
        assert_eq!((feed.subscribers(), feed.audio_subscribers()), (2, 1));
        drop(sub);
        assert_eq!((feed.subscribers(), feed.audio_subscribers()), (1, 0));
        drop(silent);
        assert_eq!((feed.subscribers(), feed.audio_subscribers()), (0, 0));
    }

    #[test]
    fn a_slow_subscriber_lags_instead_of_queueing() {
        let feed = SourceFeed::new();
        let mut sub = feed.subscribe();
        for i in 0..(FEED_CAPACITY as i64 + 10) {
            feed.publish(frame(LiveMedia::Opus, i));
        }
        assert!(matches!(
            sub.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(10))
        ));
    }

    #[test]
    fn the_cache_gives_up_on_endless_gops() {
        let feed = SourceFeed::new();
        feed.publish(frame(KEYFRAME, 0));
        for i in 1..=GOP_CACHE_MAX_FRAMES as i64 {
            feed.publish(frame(VIDEO, i));
        }
        assert!(feed.subscribe().cached.is_empty());
        feed.publish(frame(KEYFRAME, 1000));
        assert_eq!(feed.subscribe().cached.len(), 1);
    }
}
