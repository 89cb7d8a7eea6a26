//! A camera URL as it may be shown (API, logs, errors, the start-up summary): its credentials
//! replaced by `***` wherever cameras put them — the userinfo (`rtsp://user:pass@host`), and
//! `key=value` pairs in the path (XMEye/Dahua `/user=admin&password=…&channel=1…`) or the query
//! (`?token=…`, `?password=…`) whose key names a secret.

/// Keys whose values are credentials (compared without case).
const SECRET_KEYS: &[&str] = &[
    "user",
    "username",
    "usr",
    "login",
    "account",
    "password",
    "passwd",
    "pass",
    "pwd",
    "pw",
    "psw",
    "token",
    "access_token",
    "auth",
    "authorization",
    "key",
    "apikey",
    "api_key",
    "secret",
    "sig",
    "signature",
];

/// `url` with every credential it carries replaced by `***`.
pub fn redacted_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() {
        let _ = shown.set_username("***");
    }
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    let path: Vec<String> = shown.path().split('/').map(redact_pairs).collect();
    shown.set_path(&path.join("/"));
    if let Some(query) = shown.query().map(redact_pairs) {
        shown.set_query(Some(&query));
    }
    shown.to_string()
}

/// `a=1&password=x;token=y` → `a=1&password=***;token=***`.
fn redact_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let (pair, tail) = rest.split_at(end);
        match pair.split_once('=') {
            Some((key, _)) if is_secret(key) => {
                out.push_str(key);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
        let Some(separator) = tail.chars().next() else {
            return out;
        };
        out.push(separator);
        rest = &tail[1..];
    }
}

fn is_secret(key: &str) -> bool {
    let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
    SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(url: &str) -> String {
        redacted_url(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn credentials_never_show_wherever_the_camera_puts_them() {
        assert_eq!(
            shown("rtsp://admin:s3cret@10.0.0.5:554/Streaming/Channels/101"),
            "rtsp://***:***@10.0.0.5:554/Streaming/Channels/101"
        );
        assert_eq!(
            shown("rtsp://10.0.0.5:554/user=admin&password=s3cret&channel=1&stream=0.sdp?"),
            "rtsp://10.0.0.5:554/user=***&password=***&channel=1&stream=0.sdp?"
        );
        assert_eq!(
            shown("rtsp://h/cam/realmonitor?channel=1&subtype=0&Token=abc;PWD=x"),
            "rtsp://h/cam/realmonitor?channel=1&subtype=0&Token=***;PWD=***"
        );
        assert_eq!(shown("rtsp://h/live?key"), "rtsp://h/live?key");
        for url in [
            "rtsp://a:p%40ss@h/x?password=p%26ss&x=1",
            "rtsp://h/pass%77ord=s3cret/x",
            "rtsp://h/x?access_token=s3cret",
        ] {
            let s = shown(url);
            assert!(
                !s.contains("s3cret") && !s.contains("p%40ss") && !s.contains("p%26ss"),
                "{s}"
            );
        }
    }
}
