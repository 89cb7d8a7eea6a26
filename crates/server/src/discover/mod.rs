//! `lockstep discover`: the ONVIF cameras on the LAN (WS-Discovery), and with credentials what
//! each one streams — vendor, model, firmware, profiles with codecs and resolutions, RTSP URLs,
//! talkback — as a table and a ready `[[camera]]` block, or as JSON.

pub mod device;
pub mod soap;
pub mod ws_discovery;
pub mod xml;

use std::time::Duration;

use lockstep_rtsp::auth::Credentials;
use serde::Serialize;

use crate::cli::DiscoverArgs;
use device::Device;
use ws_discovery::Found;

/// One device as reported.
#[derive(Debug, Serialize)]
pub struct Report {
    pub endpoint: String,
    pub service: String,
    /// What the device's scopes call it.
    pub name: Option<String>,
    pub hardware: Option<String>,
    pub device: Option<Device>,
    /// Why the device could not be read (credentials refused, a call it does not answer).
    pub error: Option<String>,
    /// A `[[camera]]` block for lockstep.toml, when the device has a stream.
    pub camera: Option<String>,
    /// The same camera as the API adds it (`POST /api/cameras/{name}` with the rest as body).
    pub table: Option<CameraTable>,
}

/// What a found camera's `[[camera]]` table holds.
#[derive(Debug, Clone, Serialize)]
pub struct CameraTable {
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substream_url: Option<String>,
    pub talkback: &'static str,
}

/// What to look for and with which login.
#[derive(Debug)]
pub struct Search {
    pub timeout: Duration,
    pub login: Option<Credentials>,
    /// Devices to ask without discovery (`HOST[:PORT]` or a device service URL).
    pub addresses: Vec<String>,
    /// Probe the LAN as well when addresses are given.
    pub probe: bool,
}

/// What a search found: every device's report, and the answers that could not be read.
#[derive(Debug, Serialize)]
pub struct Results {
    pub devices: Vec<Report>,
    pub unreadable: Vec<String>,
}

/// Probes (unless only addresses are asked), then reads every device at once: twenty cameras
/// take as long as the slowest, not their sum.
pub async fn search(search: &Search) -> Result<Results, String> {
    let mut found: Vec<Found> = Vec::new();
    let mut unreadable = Vec::new();
    if search.addresses.is_empty() || search.probe {
        let message_id = format!("urn:uuid:{}", uuid_v4());
        let (devices, bad) = ws_discovery::probe(search.timeout, &message_id)
            .await
            .map_err(|e| format!("cannot probe the LAN (WS-Discovery, UDP 3702): {e}"))?;
        found.extend(devices);
        unreadable = bad;
    }
    for address in &search.addresses {
        found.push(by_hand(address)?);
    }
    let devices = futures::future::join_all(
        found
            .into_iter()
            .enumerate()
            .map(|(i, device)| report(device, search.login.as_ref(), i + 1)),
    )
    .await;
    Ok(Results {
        devices,
        unreadable,
    })
}

pub async fn run(args: &DiscoverArgs) -> anyhow::Result<()> {
    let login = match (&args.user, std::env::var("LOCKSTEP_ONVIF_PASSWORD")) {
        (Some(user), Ok(password)) => Some(Credentials {
            user: user.clone(),
            password,
        }),
        (Some(user), Err(_)) => anyhow::bail!(
            "--user {user} needs its password in the environment variable \
             LOCKSTEP_ONVIF_PASSWORD (kept out of the command line and shell history)"
        ),
        (None, _) => None,
    };
    let found = search(&Search {
        timeout: Duration::from_secs_f64(args.timeout),
        login,
        addresses: args.address.clone(),
        probe: args.probe,
    })
    .await
    .map_err(anyhow::Error::msg)?;
    for reason in &found.unreadable {
        eprintln!("discover: an answer that is not a ProbeMatch: {reason}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found.devices)?);
    } else if found.devices.is_empty() {
        eprintln!(
            "discover: no ONVIF device answered in {} s (a camera on another subnet, or with \
             discovery off, can be named with --address HOST)",
            args.timeout
        );
    } else {
        for report in &found.devices {
            print!("{}", table(report));
        }
    }
    Ok(())
}

/// A device named by hand: `HOST[:PORT]` or its device service URL.
fn by_hand(address: &str) -> Result<Found, String> {
    let service = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}/onvif/device_service")
    };
    url::Url::parse(&service).map_err(|e| format!("{address}: not a host or URL ({e})"))?;
    Ok(Found {
        endpoint: service.clone(),
        xaddrs: vec![service],
        name: None,
        hardware: None,
    })
}

async fn report(found: Found, login: Option<&Credentials>, index: usize) -> Report {
    let mut error = None;
    let mut device = None;
    // The first address that answers (a device may list an IPv6 one we cannot reach).
    for service in &found.xaddrs {
        match device::inspect(service, login).await {
            Ok(d) => {
                device = Some(d);
                error = None;
                break;
            }
            Err(e) => error = Some(e),
        }
    }
    let table = device.as_ref().and_then(|d| {
        camera_table(
            d,
            found.name.as_deref().unwrap_or(&d.info.model),
            index,
            login,
        )
    });
    Report {
        endpoint: found.endpoint,
        service: device
            .as_ref()
            .map_or_else(|| found.xaddrs[0].clone(), |d| d.service.clone()),
        name: found.name,
        hardware: found.hardware,
        device,
        error,
        camera: table.as_ref().map(camera_block),
        table,
    }
}

/// A camera name from what the device calls itself: `[a-z0-9-]`, at most 63 characters.
pub fn camera_name(said: &str, index: usize) -> String {
    let mut name = String::new();
    for c in said.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
    }
    let name: String = name.trim_end_matches('-').chars().take(63).collect();
    let name = name.trim_end_matches('-').to_owned();
    if name.is_empty() {
        format!("camera-{index}")
    } else {
        name
    }
}

/// The camera's table: the first profile's stream as `url`, the second's as the substream, the
/// backchannel as `talkback = "onvif"`.
pub fn camera_table(
    device: &Device,
    said: &str,
    index: usize,
    login: Option<&Credentials>,
) -> Option<CameraTable> {
    let mut streams = device
        .profiles
        .iter()
        .filter_map(|p| Some(with_credentials(p.stream_uri.as_deref()?, login)));
    Some(CameraTable {
        name: camera_name(said, index),
        url: streams.next()?,
        substream_url: streams.next(),
        talkback: if device.profiles.iter().any(|p| p.talkback) {
            "onvif"
        } else {
            "off"
        },
    })
}

/// The `[[camera]]` block of `table`, for lockstep.toml.
pub fn camera_block(table: &CameraTable) -> String {
    let mut block = format!(
        "[[camera]]\nname = \"{}\"\nurl = \"{}\"\n",
        table.name, table.url
    );
    if let Some(sub) = &table.substream_url {
        block.push_str(&format!("substream_url = \"{sub}\"\n"));
    }
    block.push_str(&format!("talkback = \"{}\"\n", table.talkback));
    block
}

/// `uri` with the login in its user information (percent-escaped), as lockstep.toml takes it.
fn with_credentials(uri: &str, login: Option<&Credentials>) -> String {
    let (Some(login), Ok(mut url)) = (login, url::Url::parse(uri)) else {
        return uri.to_owned();
    };
    if url.set_username(&login.user).is_err() || url.set_password(Some(&login.password)).is_err() {
        return uri.to_owned();
    }
    url.to_string()
}

/// The report as people read it.
pub fn table(report: &Report) -> String {
    let mut out = format!("{}  {}\n", report.endpoint, report.service);
    if let Some(name) = &report.name {
        out.push_str(&format!("  name       {name}\n"));
    }
    if let Some(error) = &report.error {
        out.push_str(&format!("  error      {error}\n\n"));
        return out;
    }
    let Some(device) = &report.device else {
        return out;
    };
    let info = &device.info;
    out.push_str(&format!(
        "  device     {} {} (firmware {}, serial {})\n",
        info.manufacturer, info.model, info.firmware, info.serial
    ));
    for profile in &device.profiles {
        let video = profile.video.as_ref().map_or("no video".to_owned(), |v| {
            let fps = v.fps.map_or(String::new(), |f| format!(" {f} fps"));
            format!("{} {}x{}{fps}", v.codec, v.width, v.height)
        });
        let audio = profile.audio.as_ref().map_or("no audio".to_owned(), |a| {
            let rate = a.rate_hz.map_or(String::new(), |r| format!(" {r} Hz"));
            format!("{}{rate}", a.codec)
        });
        let talk = if profile.talkback { ", talkback" } else { "" };
        out.push_str(&format!(
            "  stream     {}: {video}, {audio}{talk}\n             {}\n",
            profile.name,
            profile.stream_uri.as_deref().unwrap_or("(no URL)")
        ));
    }
    if let Some(block) = &report.camera {
        out.push('\n');
        out.push_str(block);
    }
    out.push('\n');
    out
}

/// A random (version 4) UUID for the probe's message id.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&crate::camera_http::random_u64().to_le_bytes());
    b[8..].copy_from_slice(&crate::camera_http::random_u64().to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_what_devices_say() {
        assert_eq!(camera_name("Front Door (2)", 1), "front-door-2");
        assert_eq!(camera_name("  ", 3), "camera-3");
        assert_eq!(camera_name(&"x".repeat(80), 1).len(), 63);
    }

    #[test]
    fn the_block_carries_the_login_main_sub_and_talkback() {
        let profile = |token: &str, uri: &str, talkback| device::Profile {
            token: token.into(),
            name: token.into(),
            video: None,
            audio: None,
            talkback,
            stream_uri: Some(uri.into()),
        };
        let device = Device {
            service: "http://10.0.0.5/onvif/device_service".into(),
            info: device::DeviceInfo::default(),
            profiles: vec![
                profile("main", "rtsp://10.0.0.5:554/Streaming/101", true),
                profile("sub", "rtsp://10.0.0.5:554/Streaming/102", false),
            ],
        };
        let login = Credentials {
            user: "admin".into(),
            password: "p@ss word".into(),
        };
        let block = camera_block(&camera_table(&device, "Front Door", 1, Some(&login)).unwrap());
        assert_eq!(
            block,
            "[[camera]]\nname = \"front-door\"\n\
             url = \"rtsp://admin:p%40ss%20word@10.0.0.5:554/Streaming/101\"\n\
             substream_url = \"rtsp://admin:p%40ss%20word@10.0.0.5:554/Streaming/102\"\n\
             talkback = \"onvif\"\n"
        );
        // What lockstep.toml reads back.
        let config = crate::config::Config::parse(&block, "d.toml").unwrap();
        assert_eq!(config.cameras[0].name.as_str(), "front-door");
    }
}
