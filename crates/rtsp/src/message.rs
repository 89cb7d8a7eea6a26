//! RTSP/1.0 messages (RFC 2326): parsing requests (the simulator's side) and responses (the
//! camera client's side) off a TCP stream that also carries interleaved RTP (`$` frames), and
//! writing responses. Our own small parser: it is what faces the network,
//! so it is strict, bounded, and fuzzed (`fuzz/fuzz_targets/rtsp_request.rs`).

use std::fmt;

/// Largest request head (request line + headers) we accept.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request body we accept (SDP of an ANNOUNCE, a SET_PARAMETER).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub uri: String,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The first header of that name (case-insensitive), trimmed.
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A parsed response (what a camera answers the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every header of that name (`WWW-Authenticate` comes once per scheme).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn cseq(&self) -> Option<u32> {
        self.header("CSeq")?.trim().parse().ok()
    }
}

impl Request {
    /// The first header of that name (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The CSeq, which every request must carry.
    pub fn cseq(&self) -> Option<u32> {
        self.header("CSeq")?.trim().parse().ok()
    }
}

/// What the byte stream holds next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Request(Request),
    Response(Reply),
    /// An interleaved binary frame: `$`, channel, 16-bit length, payload.
    Interleaved {
        channel: u8,
        payload: Vec<u8>,
    },
}

/// Why bytes are not a request. Says where, so a bad client can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    HeadTooLong,
    BodyTooLong(usize),
    BadRequestLine(String),
    UnsupportedVersion(String),
    BadHeader(String),
    TooManyHeaders,
    BadContentLength(String),
    NotUtf8,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::HeadTooLong => {
                write!(f, "request head longer than {MAX_HEAD_BYTES} bytes")
            }
            ParseError::BodyTooLong(n) => {
                write!(f, "body of {n} bytes exceeds {MAX_BODY_BYTES}")
            }
            ParseError::BadRequestLine(l) => write!(f, "malformed request line {l:?}"),
            ParseError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v:?}"),
            ParseError::BadHeader(h) => write!(f, "malformed header line {h:?}"),
            ParseError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} headers"),
            ParseError::BadContentLength(v) => write!(f, "bad Content-Length {v:?}"),
            ParseError::NotUtf8 => f.write_str("request head is not UTF-8"),
        }
    }
}

impl std::error::Error for ParseError {}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Parses the next frame from `buf`: `Ok(None)` if more bytes are needed, else the frame and how
/// many bytes it used. On error the caller answers 400 and drops the connection: without a valid
/// head, where the next message starts is unknown.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, ParseError> {
    if buf.first() == Some(&b'$') {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if buf.len() < 4 + len {
            return Ok(None);
        }
        return Ok(Some((
            Frame::Interleaved {
                channel: buf[1],
                payload: buf[4..4 + len].to_vec(),
            },
            4 + len,
        )));
    }
    // Tolerate blank lines between messages (some clients send CRLF keepalives).
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let rest = &buf[skip..];
    let Some(head_end) = find_head_end(rest) else {
        if rest.len() > MAX_HEAD_BYTES {
            return Err(ParseError::HeadTooLong);
        }
        return Ok(None);
    };
    if head_end > MAX_HEAD_BYTES {
        return Err(ParseError::HeadTooLong);
    }
    let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let mut lines = head.split("\r\n").flat_map(|l| l.split('\n'));
    let start_line = lines.next().unwrap_or_default();
    let start = parse_start_line(start_line)?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::BadHeader(shorten(line)));
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::BadHeader(shorten(line)));
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let body_len = match headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
    {
        None => 0,
        Some((_, v)) => v
            .parse::<usize>()
            .map_err(|_| ParseError::BadContentLength(shorten(v)))?,
    };
    if body_len > MAX_BODY_BYTES {
        return Err(ParseError::BodyTooLong(body_len));
    }
    let head_total = skip + head_end + 4;
    if buf.len() < head_total + body_len {
        return Ok(None);
    }
    let body = buf[head_total..head_total + body_len].to_vec();
    let frame = match start {
        StartLine::Request { method, uri } => Frame::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
        StartLine::Response { status, reason } => Frame::Response(Reply {
            status,
            reason,
            headers,
            body,
        }),
    };
    Ok(Some((frame, head_total + body_len)))
}

enum StartLine {
    Request { method: String, uri: String },
    Response { status: u16, reason: String },
}

/// `METHOD URI RTSP/1.0` or `RTSP/1.0 STATUS REASON`.
fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("RTSP/") {
        let (version, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if version != "1.0" {
            return Err(ParseError::UnsupportedVersion(shorten(line)));
        }
        let (code, reason) = rest
            .trim_start()
            .split_once(' ')
            .unwrap_or((rest.trim(), ""));
        let status = code
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=999).contains(s))
            .ok_or_else(|| ParseError::BadRequestLine(shorten(line)))?;
        return Ok(StartLine::Response {
            status,
            reason: reason.trim().to_owned(),
        });
    }
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadRequestLine(shorten(line)));
    };
    if !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
        return Err(ParseError::BadRequestLine(shorten(line)));
    }
    if version != "RTSP/1.0" {
        return Err(ParseError::UnsupportedVersion(shorten(version)));
    }
    Ok(StartLine::Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
    })
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Frames a packet for TCP interleaving: `$`, channel, 16-bit length, payload.
pub fn interleave(channel: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(usize::from(u16::MAX));
    let mut framed = Vec::with_capacity(4 + len);
    framed.push(b'$');
    framed.push(channel);
    framed.extend_from_slice(&(len as u16).to_be_bytes());
    framed.extend_from_slice(&payload[..len]);
    framed
}

/// A response under construction.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.header("Content-Type", content_type)
    }

    /// Serializes with the request's CSeq (absent when the request had none).
    pub fn to_bytes(&self, cseq: Option<u32>) -> Vec<u8> {
        let mut out = format!("RTSP/1.0 {} {}\r\n", self.status, reason(self.status));
        if let Some(cseq) = cseq {
            out.push_str(&format!("CSeq: {cseq}\r\n"));
        }
        out.push_str("Server: lockstep-sim-camera\r\n");
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// The reason phrase of an RTSP status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        551 => "Option not supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: &[u8]) -> Request {
        match parse_frame(bytes).unwrap() {
            Some((Frame::Request(r), used)) => {
                assert_eq!(used, bytes.len());
                r
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_describe() {
        let r = request(
            b"DESCRIBE rtsp://127.0.0.1:8554/cam RTSP/1.0\r\nCSeq: 2\r\n\
              Accept: application/sdp\r\nRequire: www.onvif.org/ver20/backchannel\r\n\r\n",
        );
        assert_eq!(r.method, "DESCRIBE");
        assert_eq!(r.uri, "rtsp://127.0.0.1:8554/cam");
        assert_eq!(r.cseq(), Some(2));
        assert_eq!(r.header("require"), Some("www.onvif.org/ver20/backchannel"));
    }

    #[test]
    fn waits_for_the_whole_message() {
        let full =
            b"SET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..full.len() {
            assert_eq!(parse_frame(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(request(full).body, b"hello");
    }

    #[test]
    fn reads_interleaved_frames() {
        let bytes = [b'$', 3, 0, 2, 0xaa, 0xbb, b'O'];
        assert_eq!(
            parse_frame(&bytes),
            Ok(Some((
                Frame::Interleaved {
                    channel: 3,
                    payload: vec![0xaa, 0xbb]
                },
                6
            )))
        );
        assert_eq!(parse_frame(&bytes[..5]), Ok(None));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(matches!(
            parse_frame(b"HELLO\r\n\r\n"),
            Err(ParseError::BadRequestLine(_))
        ));
        assert!(matches!(
            parse_frame(b"GET / HTTP/1.1\r\n\r\n"),
            Err(ParseError::UnsupportedVersion(_))
        ));
        assert!(matches!(
            parse_frame(b"OPTIONS * RTSP/1.0\r\nno colon here\r\n\r\n"),
            Err(ParseError::BadHeader(_))
        ));
        assert!(matches!(
            parse_frame(b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n"),
            Err(ParseError::BadContentLength(_))
        ));
        assert_eq!(
            parse_frame(&vec![b'A'; MAX_HEAD_BYTES + 1]),
            Err(ParseError::HeadTooLong)
        );
    }

    #[test]
    fn writes_responses_with_cseq_and_length() {
        let bytes = Response::new(200)
            .header("Public", "OPTIONS, DESCRIBE")
            .body("application/sdp", "v=0\r\n")
            .to_bytes(Some(4));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("RTSP/1.0 200 OK\r\nCSeq: 4\r\n"));
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(text.ends_with("\r\n\r\nv=0\r\n"));
    }
}
