//! Lockstep's server: the sources (camera, WHIP and push front ends, the source driver and its
//! pacer), the HTTP API and sockets, recording, and the commands of the `lockstep` binary. A
//! library so that the integration tests, benches and fuzz targets drive the code that runs.
//!
//! - [`live`]: sources → sync → sinks, the HTTP API, WebRTC, recording glue.
//! - [`auth`]: users, tokens, sessions and what each route needs.
//! - [`config`]: `lockstep.toml`; [`cli`]: the command line (`design/contracts.md`).
//! - [`demo`], [`measure`], [`push_sim_cmd`], [`sim_camera_cmd`]: the commands.

pub mod auth;
pub mod auth_cmd;
pub mod camera_http;
pub mod cli;
pub mod config;
mod config_brand;
pub mod config_edit;
pub mod demo;
pub mod discover;
pub mod live;
pub mod measure;
pub mod push_sim_cmd;
pub mod restream;
pub mod service;
pub mod sim_camera_cmd;
pub mod talk;
