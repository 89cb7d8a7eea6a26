//! RTSP for lockstep: camera ingest into the sync core, the camera simulator (an RTSP/1.0 server
//! behaving like a real IP camera), and the wire formats they share.

pub mod auth;
pub mod backchannel;
pub mod client;
pub mod ingest;
pub mod message;
pub mod reception;
pub mod redact;
pub mod rtp;
pub mod sdp;
pub mod serving;
pub mod sim_camera;
pub mod talkspurt;
pub mod transport;
pub mod udp_media;
