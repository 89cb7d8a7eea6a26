//! A small HTTP/1.1 client for a camera's own APIs (Hikvision's ISAPI, ONVIF's SOAP services):
//! one request per connection, the camera's 401 answered with Digest (or Basic) and its challenge kept for the
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

const USER_AGENT: &str = "lockstep";

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
    /// Requests to `base` (`http://host[:port]`). HTTPS is refused by name: TLS to cameras is
    /// not spoken yet.
    pub fn new(base: &url::Url, credentials: Option<Credentials>) -> Result<CameraHttp, String> {
        if base.scheme() != "http" {
            return Err(format!(
                "{}: lockstep speaks to cameras' HTTP APIs over http:// only so far",
                base.scheme()
            ));
        }
        let host = base.host_str().ok_or("the camera's HTTP URL has no host")?;
        let port = base.port_or_known_default().unwrap_or(80);
        Ok(CameraHttp {
            authority: format!("{host}:{port}"),
            credentials,
            challenge: None,
        })
    }

    /// `method path` without a body, answered once more with credentials after a 401.
    pub async fn request(&mut self, method: &str, path: &str) -> Result<Response, String> {
        self.send(method, path, None).await
    }

    /// `POST path` with a body of `content_type`, answered once more with credentials after a
    /// 401.
    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Result<Response, String> {
        self.send("POST", path, Some((content_type, body))).await
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> Result<Response, String> {
        let first = self.exchange(method, path, body).await?;
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
        let (second, _) = self.exchange(method, path, body).await?;
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
        self.within(method, path, connect).await
    }

    /// One request on a fresh connection: the answer and its `WWW-Authenticate` values.
    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> Result<(Response, Vec<String>), String> {
        let (content_type, body) = body.unwrap_or_default();
        let mut headers = format!("Content-Length: {}\r\n", body.len());
        if !content_type.is_empty() {
            headers.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        let head = self.head(method, path, &headers);
        let exchange = async {
            let mut stream = TcpStream::connect(&self.authority).await?;
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            read_response(&mut stream).await
        };
        self.within(method, path, exchange).await
    }

    /// `work` for `method path`, given `REQUEST_TIMEOUT`; its error says which request, where.
    async fn within<T>(
        &self,
        method: &str,
        path: &str,
        work: impl std::future::Future<Output = std::io::Result<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => Err(format!("{method} {path} to {}: {e}", self.authority)),
            Err(_) => Err(format!(
                "{method} {path} to {}: nothing in {REQUEST_TIMEOUT:?}",
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

/// Reads one answer: status, `WWW-Authenticate` values, and the body.
pub async fn read_response(stream: &mut TcpStream) -> std::io::Result<(Response, Vec<String>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        data.extend_from_slice(&buf[..n]);
        match parse_answer(&data, n == 0) {
            Ok(Some(answer)) => return Ok((answer.response, answer.challenges)),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

/// An answer parsed whole.
#[derive(Debug)]
pub struct Answer {
    pub response: Response,
    /// Its `WWW-Authenticate` values.
    pub challenges: Vec<String>,
    /// How many bytes of the input it took.
    pub used: usize,
}

/// One HTTP answer from the start of `data`: `Ok(None)` while more is needed; `closed` says the
/// connection has ended (a body without a length ends there, anything unfinished is an error).
/// The body is read by `Content-Length`, chunked, or to the end.
pub fn parse_answer(data: &[u8], closed: bool) -> Result<Option<Answer>, String> {
    if data.len() > MAX_RESPONSE_BYTES {
        return Err("an HTTP answer longer than 256 KiB".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let body_at = match response.parse(data) {
        Ok(httparse::Status::Complete(at)) => at,
        Ok(httparse::Status::Partial) if closed => {
            return Err("the connection closed before a whole HTTP answer".into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP answer: {e}")),
    };
    let header = |name: &str| -> Vec<String> {
        response
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
            .collect()
    };
    let chunked = header("transfer-encoding")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("chunked"));
    let length = match header("content-length").first() {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| format!("Content-Length {v:?} is not a length"))?,
        ),
        None => None,
    };
    let rest = &data[body_at..];
    let body = match (chunked, length) {
        (true, _) => dechunk(rest),
        (false, Some(length)) => rest.get(..length).map(<[u8]>::to_vec),
        (false, None) => closed.then(|| rest.to_vec()),
    };
    let Some(body) = body else {
        return match closed {
            true => Err("the connection closed inside an HTTP answer's body".into()),
            false => Ok(None),
        };
    };
    // A chunked body's trailer is not measured: it is taken to the end of what came.
    let body_bytes = if chunked { rest.len() } else { body.len() };
    Ok(Some(Answer {
        response: Response {
            status: response.code.unwrap_or(0),
            reason: response.reason.unwrap_or("").to_owned(),
            body: String::from_utf8_lossy(&body).into_owned(),
        },
        challenges: header("www-authenticate"),
        used: body_at + body_bytes,
    }))
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

/// 64 random bits from the OS (nonces, session ids, RTP offsets: none of them secrets).
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_length_chunks_or_to_the_end() {
        let head = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\nContent-Length: 5\r\n\r\n";
        let whole = [&head[..], b"hello"].concat();
        assert!(parse_answer(&whole[..whole.len() - 1], false)
            .unwrap()
            .is_none());
        let answer = parse_answer(&whole, false).unwrap().unwrap();
        assert_eq!(
            (answer.response.status, answer.response.body.as_str()),
            (401, "hello")
        );
        assert_eq!(answer.challenges.len(), 1);
        assert_eq!(answer.used, whole.len());
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(
            parse_answer(chunked, false).unwrap().unwrap().response.body,
            "ok"
        );
        let to_end = b"HTTP/1.0 200 OK\r\n\r\n<xml/>";
        assert!(parse_answer(to_end, false).unwrap().is_none());
        assert_eq!(
            parse_answer(to_end, true).unwrap().unwrap().response.body,
            "<xml/>"
        );
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
        assert!(parse_answer(b"HTTP/1.1 200", true).is_err());
        assert!(parse_answer(b"garbage\r\n\r\n", false).is_err());
    }

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
