//! WS-Discovery (the 2005/04 draft ONVIF devices answer): one Probe for network video
//! transmitters multicast to 239.255.255.250:3702, and the ProbeMatches that come back from
//! each device, unicast to the probe's source port.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::xml::{self, Document};

pub const MULTICAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 3702);
const ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
const DISCOVERY: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
/// Probe again this often while waiting: a multicast datagram may be lost.
const REPEAT: Duration = Duration::from_millis(700);

/// One device that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its endpoint reference (`urn:uuid:…`): the same device answering twice is one device.
    pub endpoint: String,
    /// Its device service URLs (`http://HOST[:PORT]/onvif/device_service`).
    pub xaddrs: Vec<String>,
    /// What its scopes say (`onvif://www.onvif.org/name/…`, `…/hardware/…`).
    pub name: Option<String>,
    pub hardware: Option<String>,
}

/// The Probe with `message_id` (`urn:uuid:…`).
pub fn probe_message(message_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
         xmlns:a=\"{ADDRESSING}\" xmlns:d=\"{DISCOVERY}\" \
         xmlns:dn=\"http://www.onvif.org/ver10/network/wsdl\">\
         <s:Header>\
         <a:Action s:mustUnderstand=\"1\">{DISCOVERY}/Probe</a:Action>\
         <a:MessageID>{message_id}</a:MessageID>\
         <a:ReplyTo><a:Address>{ADDRESSING}/role/anonymous</a:Address></a:ReplyTo>\
         <a:To s:mustUnderstand=\"1\">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>\
         </s:Header>\
         <s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>\
         </s:Envelope>"
    )
}

/// The devices in a ProbeMatches answering `message_id`; an answer to another probe (another
/// client on the LAN) is not ours: `Ok(empty)`.
pub fn parse_matches(datagram: &[u8], message_id: &str) -> Result<Vec<Found>, String> {
    let text = std::str::from_utf8(datagram).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let doc = Document::parse(text)?;
    let root = doc.root_element();
    if let Some(relates) = xml::descendant(root, "RelatesTo") {
        if xml::text(relates).trim() != message_id {
            return Ok(Vec::new());
        }
    }
    let matches = xml::descendant(root, "ProbeMatches").ok_or("no ProbeMatches in the answer")?;
    let mut found = Vec::new();
    for m in matches.children().filter(|n| xml::is(n, "ProbeMatch")) {
        let endpoint = xml::descendant(m, "Address")
            .map(|n| xml::text(n).trim().to_owned())
            .unwrap_or_default();
        let xaddrs: Vec<String> = xml::descendant(m, "XAddrs")
            .map(|n| xml::text(n).split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        if xaddrs.is_empty() {
            return Err("a ProbeMatch without XAddrs (where its device service is)".into());
        }
        let scopes = xml::descendant(m, "Scopes")
            .map(|n| xml::text(n))
            .unwrap_or_default();
        found.push(Found {
            endpoint: if endpoint.is_empty() {
                xaddrs[0].clone()
            } else {
                endpoint
            },
            xaddrs,
            name: scope(&scopes, "name"),
            hardware: scope(&scopes, "hardware"),
        });
    }
    Ok(found)
}

/// The value of scope `onvif://www.onvif.org/{key}/VALUE`, percent-decoded.
fn scope(scopes: &str, key: &str) -> Option<String> {
    let prefix = format!("onvif://www.onvif.org/{key}/");
    let value = scopes
        .split_whitespace()
        .find_map(|s| s.strip_prefix(prefix.as_str()))?;
    Some(xml::percent_decoded(value)).filter(|d| !d.is_empty())
}

/// Probes for `timeout` and returns every device that answered (by endpoint), with the
/// datagrams that could not be read (`from: reason`).
pub async fn probe(
    timeout: Duration,
    message_id: &str,
) -> std::io::Result<(Vec<Found>, Vec<String>)> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.set_multicast_ttl_v4(1)?;
    let probe = probe_message(message_id);
    let mut devices: BTreeMap<String, Found> = BTreeMap::new();
    let mut unreadable = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut next_probe = tokio::time::Instant::now();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_probe {
            socket.send_to(probe.as_bytes(), MULTICAST).await?;
            next_probe = now + REPEAT;
        }
        let wait = next_probe.min(deadline);
        let Ok(received) = tokio::time::timeout_at(wait, socket.recv_from(&mut buf)).await else {
            continue;
        };
        let (n, from) = received?;
        match parse_matches(&buf[..n], message_id) {
            Ok(found) => {
                for device in found {
                    devices.entry(device.endpoint.clone()).or_insert(device);
                }
            }
            Err(reason) => {
                // Each repeated probe draws the same answer again: one line per answer.
                let line = format!("{from}: {reason}");
                if !unreadable.contains(&line) {
                    unreadable.push(line);
                }
            }
        }
    }
    Ok((devices.into_values().collect(), unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "urn:uuid:11111111-2222-3333-4444-555555555555";

    fn answer(relates: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?><SOAP-ENV:Envelope \
             xmlns:SOAP-ENV=\"http://www.w3.org/2003/05/soap-envelope\" \
             xmlns:wsa=\"{ADDRESSING}\" xmlns:wsdd=\"{DISCOVERY}\"><SOAP-ENV:Header>\
             <wsa:RelatesTo>{relates}</wsa:RelatesTo></SOAP-ENV:Header><SOAP-ENV:Body>\
             <wsdd:ProbeMatches><wsdd:ProbeMatch><wsa:EndpointReference><wsa:Address>\
             urn:uuid:c9790c3a</wsa:Address></wsa:EndpointReference>\
             <wsdd:Types>dn:NetworkVideoTransmitter</wsdd:Types><wsdd:Scopes>\
             onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Front%20Door \
             onvif://www.onvif.org/hardware/DS-2CD2043</wsdd:Scopes>\
             <wsdd:XAddrs>http://10.0.0.5/onvif/device_service http://[fe80::1]/onvif/device_service</wsdd:XAddrs>\
             </wsdd:ProbeMatch></wsdd:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"
        )
    }

    #[test]
    fn reads_a_probe_match_whatever_the_prefixes() {
        let found = parse_matches(answer(ID).as_bytes(), ID).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].endpoint, "urn:uuid:c9790c3a");
        assert_eq!(found[0].xaddrs[0], "http://10.0.0.5/onvif/device_service");
        assert_eq!(found[0].name.as_deref(), Some("Front Door"));
        assert_eq!(found[0].hardware.as_deref(), Some("DS-2CD2043"));
    }

    #[test]
    fn an_answer_to_another_probe_is_not_ours_and_garbage_says_why() {
        assert!(parse_matches(answer("urn:uuid:other").as_bytes(), ID)
            .unwrap()
            .is_empty());
        let err = parse_matches(b"<a><b></a>", ID).unwrap_err();
        assert!(err.contains("XML"), "{err}");
        let err = parse_matches(&[0xff, 0xfe], ID).unwrap_err();
        assert!(err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn the_probe_is_well_formed_and_names_its_message() {
        let probe = probe_message(ID);
        let doc = Document::parse(&probe).unwrap();
        let id = xml::descendant(doc.root_element(), "MessageID").unwrap();
        assert_eq!(xml::text(id), ID);
    }
}
