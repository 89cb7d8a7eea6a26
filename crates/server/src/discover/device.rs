//! What an ONVIF device says about itself: who it is (GetDeviceInformation), where its media
//! service is (GetCapabilities), its profiles with their codecs and resolutions and whether
//! they carry an audio output — the backchannel (GetProfiles), and each profile's RTSP URL
//! (GetStreamUri). Media service version 1.0: the one every Profile S device has.

use lockstep_rtsp::auth::Credentials;
use serde::Serialize;

use super::soap::{self, escaped};
use super::xml::{self, Document};
use crate::camera_http::CameraHttp;

const DEVICE_NS: &str = "http://www.onvif.org/ver10/device/wsdl";
const MEDIA_NS: &str = "http://www.onvif.org/ver10/media/wsdl";
const SCHEMA_NS: &str = "http://www.onvif.org/ver10/schema";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Video {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audio {
    pub codec: String,
    pub rate_hz: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub token: String,
    pub name: String,
    pub video: Option<Video>,
    pub audio: Option<Audio>,
    /// The profile has an audio output: the camera's speaker, reached over the backchannel.
    pub talkback: bool,
    pub stream_uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub service: String,
    pub info: DeviceInfo,
    pub profiles: Vec<Profile>,
}

pub fn parse_device_information(answer: &str) -> Result<DeviceInfo, String> {
    let doc = Document::parse(answer)?;
    let response = xml::descendant(doc.root_element(), "GetDeviceInformationResponse")
        .ok_or("no GetDeviceInformationResponse in the answer")?;
    let field = |name| xml::child_text(response, name).unwrap_or_default();
    Ok(DeviceInfo {
        manufacturer: field("Manufacturer"),
        model: field("Model"),
        firmware: field("FirmwareVersion"),
        serial: field("SerialNumber"),
    })
}

/// The media service's URL from GetCapabilities, if the device names one.
pub fn parse_media_service(answer: &str) -> Result<Option<String>, String> {
    let doc = Document::parse(answer)?;
    let media = xml::descendant(doc.root_element(), "Media");
    Ok(media.and_then(|m| xml::child_text(m, "XAddr")))
}

pub fn parse_profiles(answer: &str) -> Result<Vec<Profile>, String> {
    let doc = Document::parse(answer)?;
    let response = xml::descendant(doc.root_element(), "GetProfilesResponse")
        .ok_or("no GetProfilesResponse in the answer")?;
    let mut profiles = Vec::new();
    for (i, node) in response
        .children()
        .filter(|n| xml::is(n, "Profiles"))
        .enumerate()
    {
        let token = node
            .attribute("token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("profile {} has no token", i + 1))?;
        let number = |parent: roxmltree::Node<'_, '_>, name: &str| {
            xml::child_text(parent, name).and_then(|t| t.parse::<f64>().ok())
        };
        let video = xml::descendant(node, "VideoEncoderConfiguration").map(|v| {
            let resolution = xml::descendant(v, "Resolution");
            Video {
                codec: xml::child_text(v, "Encoding").unwrap_or_default(),
                width: resolution.and_then(|r| number(r, "Width")).unwrap_or(0.0) as u32,
                height: resolution.and_then(|r| number(r, "Height")).unwrap_or(0.0) as u32,
                fps: xml::descendant(v, "RateControl")
                    .and_then(|r| number(r, "FrameRateLimit"))
                    .map(|f| f as u32),
            }
        });
        let audio = xml::descendant(node, "AudioEncoderConfiguration").map(|a| Audio {
            codec: xml::child_text(a, "Encoding").unwrap_or_default(),
            // ONVIF states the rate in kHz.
            rate_hz: number(a, "SampleRate").map(|k| (k * 1000.0).round() as u32),
        });
        profiles.push(Profile {
            token: token.to_owned(),
            name: xml::child_text(node, "Name").unwrap_or_else(|| token.to_owned()),
            video,
            audio,
            talkback: xml::descendant(node, "AudioOutputConfiguration").is_some(),
            stream_uri: None,
        });
    }
    Ok(profiles)
}

pub fn parse_stream_uri(answer: &str) -> Result<String, String> {
    let doc = Document::parse(answer)?;
    let media_uri =
        xml::descendant(doc.root_element(), "MediaUri").ok_or("no MediaUri in the answer")?;
    xml::child_text(media_uri, "Uri").ok_or_else(|| "an empty stream URI".to_owned())
}

/// Asks the device at `service` (its device service URL) everything above.
pub async fn inspect(service: &str, login: Option<&Credentials>) -> Result<Device, String> {
    let (mut http, path) = endpoint(service, login)?;
    let info = soap::call(
        &mut http,
        &path,
        "GetDeviceInformation",
        &format!("<tds:GetDeviceInformation xmlns:tds=\"{DEVICE_NS}\"/>"),
        login,
    )
    .await
    .and_then(|a| parse_device_information(&a).map_err(|e| format!("GetDeviceInformation: {e}")))?;
    let capabilities = soap::call(
        &mut http,
        &path,
        "GetCapabilities",
        &format!(
            "<tds:GetCapabilities xmlns:tds=\"{DEVICE_NS}\"><tds:Category>Media</tds:Category>\
             </tds:GetCapabilities>"
        ),
        login,
    )
    .await
    .and_then(|a| parse_media_service(&a).map_err(|e| format!("GetCapabilities: {e}")))?;
    // Some devices answer every service at the device service's URL.
    let media_service = capabilities.unwrap_or_else(|| service.to_owned());
    let (mut media, media_path) = endpoint(&media_service, login)?;
    let mut profiles = soap::call(
        &mut media,
        &media_path,
        "GetProfiles",
        &format!("<trt:GetProfiles xmlns:trt=\"{MEDIA_NS}\"/>"),
        login,
    )
    .await
    .and_then(|a| parse_profiles(&a).map_err(|e| format!("GetProfiles: {e}")))?;
    for profile in &mut profiles {
        let body = format!(
            "<trt:GetStreamUri xmlns:trt=\"{MEDIA_NS}\" xmlns:tt=\"{SCHEMA_NS}\">\
             <trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport>\
             <tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>\
             <trt:ProfileToken>{}</trt:ProfileToken></trt:GetStreamUri>",
            escaped(&profile.token)
        );
        let operation = format!("GetStreamUri({})", profile.token);
        profile.stream_uri = Some(
            soap::call(&mut media, &media_path, &operation, &body, login)
                .await
                .and_then(|a| parse_stream_uri(&a).map_err(|e| format!("{operation}: {e}")))?,
        );
    }
    Ok(Device {
        service: service.to_owned(),
        info,
        profiles,
    })
}

/// The HTTP client and path for a service URL.
fn endpoint(service: &str, login: Option<&Credentials>) -> Result<(CameraHttp, String), String> {
    let url = url::Url::parse(service).map_err(|e| format!("{service}: not a URL: {e}"))?;
    let http = CameraHttp::new(&url, login.cloned())?;
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    Ok((http, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILES: &str = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
        xmlns:trt=\"http://www.onvif.org/ver10/media/wsdl\" xmlns:tt=\"http://www.onvif.org/ver10/schema\">\
        <s:Body><trt:GetProfilesResponse>\
        <trt:Profiles token=\"main\" fixed=\"true\"><tt:Name>mainStream</tt:Name>\
        <tt:VideoEncoderConfiguration token=\"v0\"><tt:Name>v</tt:Name><tt:Encoding>H265</tt:Encoding>\
        <tt:Resolution><tt:Width>2560</tt:Width><tt:Height>1440</tt:Height></tt:Resolution>\
        <tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit></tt:RateControl></tt:VideoEncoderConfiguration>\
        <tt:AudioEncoderConfiguration token=\"a0\"><tt:Encoding>AAC</tt:Encoding><tt:SampleRate>16</tt:SampleRate>\
        </tt:AudioEncoderConfiguration><tt:Extension><tt:AudioOutputConfiguration token=\"o0\"/>\
        </tt:Extension></trt:Profiles>\
        <trt:Profiles token=\"sub\"><tt:Name>subStream</tt:Name>\
        <tt:VideoEncoderConfiguration token=\"v1\"><tt:Encoding>H264</tt:Encoding>\
        <tt:Resolution><tt:Width>640</tt:Width><tt:Height>360</tt:Height></tt:Resolution>\
        </tt:VideoEncoderConfiguration></trt:Profiles>\
        </trt:GetProfilesResponse></s:Body></s:Envelope>";

    #[test]
    fn reads_profiles_with_codecs_resolutions_and_the_backchannel() {
        let profiles = parse_profiles(PROFILES).unwrap();
        assert_eq!(profiles.len(), 2);
        let main = &profiles[0];
        assert_eq!(main.token, "main");
        assert_eq!(main.name, "mainStream");
        assert_eq!(
            main.video,
            Some(Video {
                codec: "H265".into(),
                width: 2560,
                height: 1440,
                fps: Some(25)
            })
        );
        assert_eq!(
            main.audio,
            Some(Audio {
                codec: "AAC".into(),
                rate_hz: Some(16_000)
            })
        );
        assert!(main.talkback);
        assert!(!profiles[1].talkback);
        assert_eq!(profiles[1].audio, None);
    }

    #[test]
    fn missing_parts_are_named() {
        let err = parse_profiles("<a/>").unwrap_err();
        assert!(err.contains("GetProfilesResponse"), "{err}");
        let err = parse_profiles("<r><GetProfilesResponse><Profiles/></GetProfilesResponse></r>")
            .unwrap_err();
        assert!(err.contains("profile 1 has no token"), "{err}");
        let err = parse_stream_uri("<r><MediaUri><Uri> </Uri></MediaUri></r>").unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let info = parse_device_information(
            "<r><GetDeviceInformationResponse><Manufacturer>HIKVISION</Manufacturer>\
             <Model>DS-2CD2043G2-I</Model></GetDeviceInformationResponse></r>",
        )
        .unwrap();
        assert_eq!(info.manufacturer, "HIKVISION");
        assert_eq!(info.firmware, "");
    }
}
