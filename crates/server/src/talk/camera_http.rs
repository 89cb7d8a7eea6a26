//! A small HTTP/1.1 client for a camera's own API (Hikvision's ISAPI): one request per
//! connection, the camera's 401 answered with Digest (or Basic) and its challenge kept for the
//! next requests — which lets a stream's headers carry credentials before its body starts, as
//! a body that never ends cannot be sent twice.

use std::time::Duration;

use lockstep_rtsp::auth::{Challenge, Credentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a request may take, connection to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest answer read (camera XML documents are a few KiB).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

const USER_AGENT: &str = "lockstep-talk";

/// A camera's answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub body: String,
}

/// Requests to one camera.
#[derive(Debug, Clone)]
pub struct CameraHttp {
    /// `host:port`.
    authority: String,
    credentials: Option<Credentials>,
    /// The camera's last challenge and how many requests answered it (Digest's `nc`).
    challenge: Option<(Challenge, u32)>,
}

impl CameraHttp {
    /// Requests to `base` (`http://host[:port]`). HTTPS is refused by name: ISAPI over TLS is
    /// not spoken yet.
    pub fn new(base: &url::Url, credentials: Option<Credentials>) -> Result<CameraHttp, String> {
        if base.scheme() != "http" {
            return Err(format!(
                "{}: lockstep speaks ISAPI over http:// only so far",
                base.scheme()
            ));
        }
        let host = base
            .host_str()
            .ok_or("the camera's ISAPI URL has no host")?;
        let port = base.port_or_known_default().unwrap_or(80);
        Ok(CameraHttp {
            authority: format!("{host}:{port}"),
            credentials,
            challenge: None,
        })
    }

    /// `method path` without a body, answered once more with credentials after a 401.
    pub async fn request(&mut self, method: &str, path: &str) -> Result<Response, String> {
        let first = self.exchange(method, path).await?;
        if first.0.status != 401 {
            return Ok(first.0);
        }
        let Some(_) = &self.credentials else {
            return Err(format!(
                "{method} {path}: the camera asks for credentials (401); its URL has none"
            ));
        };
        let challenge = Challenge::choose(first.1.iter().map(String::as_str))
            .map_err(|e| format!("{method} {path}: {e}"))?;
        self.challenge = Some((challenge, 0));
        let (second, _) = self.exchange(method, path).await?;
        if second.status == 401 {
            return Err(format!(
                "{method} {path}: the camera refused the credentials (401)"
            ));
        }
        Ok(second)
    }

    /// Connects and writes the headers of `method path` with a body of `content_length` bytes
    /// of `content_type`; the body is the caller's to write on the returned connection, and
    /// the answer (if the camera sends one) its to read. Credentials come from the last
    /// challenge: make a request first when the camera asks for them.
    pub async fn start_upload(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        content_length: u64,
    ) -> Result<TcpStream, String> {
        let head = self.head(
            method,
            path,
            &format!("Content-Type: {content_type}\r\nContent-Length: {content_length}\r\n"),
        );
        let connect = async {
            let mut stream = TcpStream::connect(&self.authority).await?;
            stream.set_nodelay(true)?;
            stream.write_all(head.as_bytes()).await?;
            Ok::<_, std::io::Error>(stream)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, connect).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(format!("{method} {path} to {}: {e}", self.authority)),
            Err(_) => Err(format!(
                "{method} {path} to {}: no connection in {REQUEST_TIMEOUT:?}",
                self.authority
            )),
        }
    }

    /// One request on a fresh connection: the answer and its `WWW-Authenticate` values.
    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
    ) -> Result<(Response, Vec<String>), String> {
        let head = self.head(method, path, "Content-Length: 0\r\n");
        let exchange = async {
            let mut stream = TcpStream::connect(&self.authority).await?;
            stream.write_all(head.as_bytes()).await?;
            read_response(&mut stream).await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!("{method} {path} to {}: {e}", self.authority)),
            Err(_) => Err(format!(
                "{method} {path} to {}: no answer in {REQUEST_TIMEOUT:?}",
                self.authority
            )),
        }
    }

    /// The request line and headers, with credentials when the camera has challenged us.
    fn head(&mut self, method: &str, path: &str, extra: &str) -> String {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n{extra}",
            self.authority
        );
        if let (Some(credentials), Some((challenge, count))) =
            (&self.credentials, self.challenge.as_mut())
        {
            *count += 1;
            let cnonce = format!("{:016x}", random_u64());
            let value = challenge.authorization(credentials, method, path, *count, &cnonce);
            head.push_str(&format!("Authorization: {value}\r\n"));
        }
        head.push_str("\r\n");
        head
    }
}

/// Reads one answer: status, `WWW-Authenticate` values, and the body (by `Content-Length`,
/// chunked, or to the connection's end).
pub async fn read_response(stream: &mut TcpStream) -> std::io::Result<(Response, Vec<String>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let (status, reason, challenges, body_at, length, chunked) = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(invalid("the connection closed before an HTTP answer"));
        }
        data.extend_from_slice(&buf[..n]);
        if data.len() > MAX_RESPONSE_BYTES {
            return Err(invalid("an HTTP answer's head longer than 256 KiB"));
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&data) {
            Ok(httparse::Status::Complete(at)) => {
                let header = |name: &str| -> Vec<String> {
                    response
                        .headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
                        .collect()
                };
                let length = match header("content-length").into_iter().next() {
                    Some(v) => Some(
                        v.parse::<usize>()
                            .map_err(|_| invalid(&format!("Content-Length {v:?}")))?,
                    ),
                    None => None,
                };
                let chunked = header("transfer-encoding")
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case("chunked"));
                break (
                    response.code.unwrap_or(0),
                    response.reason.unwrap_or("").to_owned(),
                    header("www-authenticate"),
                    at,
                    length,
                    chunked,
                );
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(invalid(&format!("not an HTTP answer: {e}"))),
        }
    };
    let mut body = data.split_off(body_at);
    let complete = |body: &[u8]| match (length, chunked) {
        (_, true) => dechunk(body).is_some(),
        (Some(length), false) => body.len() >= length,
        (None, false) => false,
    };
    while !complete(&body) {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            if length.is_none() && !chunked {
                break;
            }
            return Err(invalid(
                "the connection closed inside an HTTP answer's body",
            ));
        }
        body.extend_from_slice(&buf[..n]);
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(invalid("an HTTP answer longer than 256 KiB"));
        }
    }
    let body = if chunked {
        dechunk(&body).unwrap_or_default()
    } else {
        body
    };
    let body = match length {
        Some(length) if !chunked => body[..length.min(body.len())].to_vec(),
        _ => body,
    };
    Ok((
        Response {
            status,
            reason,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
        challenges,
    ))
}

/// A chunked body's content, once its last chunk is in.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_whole_only_after_its_last_chunk() {
        assert_eq!(dechunk(b"5\r\nhello\r\n6\r\n world\r\n"), None);
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n").as_deref(),
            Some(&b"hello world"[..])
        );
        assert_eq!(dechunk(b"zz\r\n"), None);
    }
}
