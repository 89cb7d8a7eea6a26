//! RTSP authentication as cameras do it: Digest (RFC 2617, MD5, no qop) and Basic.

use base64::Engine;
use md5::{Digest, Md5};

pub const REALM: &str = "lockstep-sim-camera";

/// The credentials a server demands.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        write!(f, "Credentials {{ user: {:?}, password: *** }}", self.user)
    }
}

fn md5_hex(input: &str) -> String {
    let digest = Md5::digest(input.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The challenges for a 401: Digest first (preferred), then Basic.
pub fn challenges(nonce: &str) -> [String; 2] {
    [
        format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\""),
        format!("Basic realm=\"{REALM}\""),
    ]
}

/// Splits `key="value", key=value` parameters.
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, r)) => (v, r),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').map_or((after, ""), |(v, r)| (v, r))
        };
        out.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        rest = remaining.trim_start_matches([',', ' ']);
    }
    out
}

/// Whether the `Authorization` header proves the credentials for `method` (Digest against
/// `nonce`).
pub fn verify(
    credentials: &Credentials,
    authorization: Option<&str>,
    method: &str,
    nonce: &str,
) -> bool {
    let Some(authorization) = authorization else {
        return false;
    };
    let (scheme, rest) = authorization
        .trim()
        .split_once(' ')
        .unwrap_or((authorization, ""));
    if scheme.eq_ignore_ascii_case("Basic") {
        let expected = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.user, credentials.password));
        return rest.trim() == expected;
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return false;
    }
    let p = params(rest);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(user), Some(uri), Some(response), Some(their_nonce)) =
        (get("username"), get("uri"), get("response"), get("nonce"))
    else {
        return false;
    };
    if user != credentials.user || their_nonce != nonce {
        return false;
    }
    let realm = get("realm").unwrap_or(REALM);
    let ha1 = md5_hex(&format!("{user}:{realm}:{}", credentials.password));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let expected = match (get("qop"), get("nc"), get("cnonce")) {
        (Some(qop), Some(nc), Some(cnonce)) => {
            md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
        }
        _ => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    };
    response.eq_ignore_ascii_case(&expected)
}

/// A client's Digest `Authorization` value (used by our own clients and tests).
pub fn digest_authorization(
    credentials: &Credentials,
    method: &str,
    uri: &str,
    realm: &str,
    nonce: &str,
) -> String {
    let ha1 = md5_hex(&format!(
        "{}:{realm}:{}",
        credentials.user, credentials.password
    ));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    format!(
        "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"",
        credentials.user
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            user: "admin".into(),
            password: "s3cret".into(),
        }
    }

    #[test]
    fn rfc2617_example_digest() {
        // RFC 2617 section 3.5, without qop: the classic computation.
        let c = Credentials {
            user: "Mufasa".into(),
            password: "Circle Of Life".into(),
        };
        let header = digest_authorization(
            &c,
            "GET",
            "/dir/index.html",
            "testrealm@host.com",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        );
        assert!(header.contains("response=\"670fd8c2df070c60b045671b8b24ff02\""));
    }

    #[test]
    fn accepts_digest_and_basic() {
        let c = creds();
        let digest = digest_authorization(&c, "DESCRIBE", "rtsp://h/cam", REALM, "abc");
        assert!(verify(&c, Some(&digest), "DESCRIBE", "abc"));
        // Wrong method, stale nonce, wrong password.
        assert!(!verify(&c, Some(&digest), "PLAY", "abc"));
        assert!(!verify(&c, Some(&digest), "DESCRIBE", "other"));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:s3cret")
        );
        assert!(verify(&c, Some(&basic), "DESCRIBE", "abc"));
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:nope")
        );
        assert!(!verify(&c, Some(&wrong), "DESCRIBE", "abc"));
        assert!(!verify(&c, None, "DESCRIBE", "abc"));
        assert!(!verify(&c, Some("Bearer x"), "DESCRIBE", "abc"));
    }

    #[test]
    fn debug_hides_the_password() {
        assert!(!format!("{:?}", creds()).contains("s3cret"));
    }
}
