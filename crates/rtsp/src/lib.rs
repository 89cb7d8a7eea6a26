//! RTSP for lockstep: the camera simulator (an RTSP/1.0 server behaving like a real IP camera)
//! and the wire formats it shares with our clients.

pub mod auth;
pub mod message;
pub mod rtp;
pub mod sim_camera;
pub mod transport;
