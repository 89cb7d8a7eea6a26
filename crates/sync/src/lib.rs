//! placeholder
#![forbid(unsafe_code)]
mod jitter_buffer;
mod latency_profile;
mod rtp_timeline;
mod sender_report_clock;
mod skew;
mod time;
pub use jitter_buffer::*;
pub use latency_profile::*;
pub use rtp_timeline::*;
pub use sender_report_clock::*;
pub use skew::*;
pub use time::*;
