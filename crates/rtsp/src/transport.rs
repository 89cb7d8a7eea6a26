//! The RTSP `Transport` header: which of the client's offers we take.

/// A transport the server can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RTP and RTCP interleaved on the RTSP connection, on these channels.
    Tcp { rtp_channel: u8, rtcp_channel: u8 },
    /// RTP and RTCP over UDP to these client ports.
    Udp { client_rtp: u16, client_rtcp: u16 },
}

/// Picks the first offer we support from a `Transport` header value. `None`: nothing usable
/// (answer 461).
pub fn choose(header: &str) -> Option<Transport> {
    header.split(',').find_map(parse_one)
}

fn parse_one(spec: &str) -> Option<Transport> {
    let mut params = spec.split(';').map(str::trim);
    let protocol = params.next()?;
    let tcp = match protocol.to_ascii_uppercase().as_str() {
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        "RTP/AVP/TCP" => true,
        _ => return None,
    };
    let mut interleaved = None;
    let mut client_port = None;
    for p in params {
        let (key, value) = p.split_once('=').unwrap_or((p, ""));
        match key.to_ascii_lowercase().as_str() {
            "multicast" => return None,
            "interleaved" => interleaved = Some(pair::<u8>(value)?),
            "client_port" => client_port = Some(pair::<u16>(value)?),
            _ => {}
        }
    }
    if tcp {
        let (rtp_channel, rtcp_channel) = interleaved.unwrap_or((0, 1));
        Some(Transport::Tcp {
            rtp_channel,
            rtcp_channel,
        })
    } else {
        let (client_rtp, client_rtcp) = client_port?;
        if client_rtp == 0 {
            return None;
        }
        Some(Transport::Udp {
            client_rtp,
            client_rtcp,
        })
    }
}

/// `a-b` or `a` (then `b = a + 1`).
fn pair<T: std::str::FromStr + Copy + TryFrom<u32> + Into<u32>>(value: &str) -> Option<(T, T)> {
    match value.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = value.trim().parse().ok()?;
            let b = T::try_from(a.into() + 1).ok()?;
            Some((a, b))
        }
    }
}

impl Transport {
    /// The `Transport` answer; `server_ports` for UDP, `ssrc` of the track.
    pub fn answer(&self, server_ports: Option<(u16, u16)>, ssrc: u32) -> String {
        match *self {
            Transport::Tcp {
                rtp_channel,
                rtcp_channel,
            } => format!(
                "RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={ssrc:08X}"
            ),
            Transport::Udp {
                client_rtp,
                client_rtcp,
            } => {
                let (s_rtp, s_rtcp) = server_ports.unwrap_or((0, 0));
                format!(
                    "RTP/AVP;unicast;client_port={client_rtp}-{client_rtcp};\
                     server_port={s_rtp}-{s_rtcp};ssrc={ssrc:08X}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_tcp_interleaved() {
        assert_eq!(
            choose("RTP/AVP/TCP;unicast;interleaved=2-3"),
            Some(Transport::Tcp {
                rtp_channel: 2,
                rtcp_channel: 3
            })
        );
        assert_eq!(
            choose("RTP/AVP/TCP;unicast"),
            Some(Transport::Tcp {
                rtp_channel: 0,
                rtcp_channel: 1
            })
        );
    }

    #[test]
    fn takes_udp_and_skips_multicast_offers() {
        assert_eq!(
            choose("RTP/AVP;multicast,RTP/AVP;unicast;client_port=5000-5001"),
            Some(Transport::Udp {
                client_rtp: 5000,
                client_rtcp: 5001
            })
        );
        assert_eq!(
            choose("RTP/AVP/UDP;unicast;client_port=6000"),
            Some(Transport::Udp {
                client_rtp: 6000,
                client_rtcp: 6001
            })
        );
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        assert_eq!(choose("RTP/SAVP;unicast;client_port=1-2"), None);
        assert_eq!(choose("RTP/AVP;unicast"), None);
        assert_eq!(choose("RTP/AVP/TCP;interleaved=x-y"), None);
        assert_eq!(choose(""), None);
    }
}
