//! Anything an ONVIF device could answer `lockstep discover`: a WS-Discovery datagram, and the
//! SOAP answers to GetDeviceInformation, GetCapabilities, GetProfiles and GetStreamUri, and a
//! fault. Each returns what it could read or an error that says what — never a panic.
//!
//! `cargo fuzz run onvif_answer` (from `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::discover::{device, soap, ws_discovery};

fuzz_target!(|data: &[u8]| {
    if let Ok(found) = ws_discovery::parse_matches(data, "urn:uuid:x") {
        assert!(found.iter().all(|f| !f.xaddrs.is_empty()));
    }
    let text = String::from_utf8_lossy(data);
    let _ = device::parse_device_information(&text);
    let _ = device::parse_media_service(&text);
    if let Ok(profiles) = device::parse_profiles(&text) {
        assert!(profiles.iter().all(|p| !p.token.is_empty()));
    }
    if let Ok(uri) = device::parse_stream_uri(&text) {
        assert!(!uri.trim().is_empty());
    }
    let _ = soap::fault(&text);
});
