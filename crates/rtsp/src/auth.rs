//! RTSP authentication as cameras do it: Digest (RFC 2617, MD5, with or without `qop=auth`) and
//! Basic — the simulator's side (challenges, verification) and the camera client's (answering a
//! challenge).

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

/// What a camera's 401 asks for: the strongest scheme we answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Digest {
        realm: String,
        nonce: String,
        opaque: Option<String>,
        /// `qop` offers `auth`: the response covers a client nonce and a count.
        qop_auth: bool,
        /// `algorithm=MD5` was written (echoed back, as some cameras require).
        algorithm_named: bool,
    },
    Basic,
}

impl Challenge {
    /// The best challenge among a 401's `WWW-Authenticate` values (Digest MD5 over Basic), or
    /// why none can be answered.
    pub fn choose<'a>(values: impl Iterator<Item = &'a str>) -> Result<Challenge, String> {
        let mut basic = false;
        let mut refused = None;
        for value in values {
            let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
            if scheme.eq_ignore_ascii_case("Basic") {
                basic = true;
                continue;
            }
            if !scheme.eq_ignore_ascii_case("Digest") {
                refused.get_or_insert(format!("the camera asks for {scheme} authentication"));
                continue;
            }
            let p = params(rest);
            let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let algorithm = get("algorithm");
            if algorithm
                .as_deref()
                .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
            {
                refused.get_or_insert(format!(
                    "the camera asks for Digest with {}, lockstep answers MD5",
                    algorithm.as_deref().unwrap_or_default()
                ));
                continue;
            }
            let (Some(realm), Some(nonce)) = (get("realm"), get("nonce")) else {
                refused.get_or_insert("the camera's Digest challenge has no realm or nonce".into());
                continue;
            };
            let qop = get("qop").unwrap_or_default();
            return Ok(Challenge::Digest {
                realm,
                nonce,
                opaque: get("opaque"),
                qop_auth: qop
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth")),
                algorithm_named: algorithm.is_some(),
            });
        }
        if basic {
            return Ok(Challenge::Basic);
        }
        Err(refused.unwrap_or_else(|| "the camera's 401 carries no challenge".into()))
    }

    /// The `Authorization` value for a request; `count` numbers the requests answered with
    /// this challenge's nonce (from 1), `cnonce` is the client's nonce for `qop=auth`.
    pub fn authorization(
        &self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        count: u32,
        cnonce: &str,
    ) -> String {
        let Challenge::Digest {
            realm,
            nonce,
            opaque,
            qop_auth,
            algorithm_named,
        } = self
        else {
            let pair = format!("{}:{}", credentials.user, credentials.password);
            return format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            );
        };
        if !qop_auth {
            let mut header = digest_authorization(credentials, method, uri, realm, nonce);
            if let Some(opaque) = opaque {
                header.push_str(&format!(", opaque=\"{opaque}\""));
            }
            if *algorithm_named {
                header.push_str(", algorithm=MD5");
            }
            return header;
        }
        let ha1 = md5_hex(&format!(
            "{}:{realm}:{}",
            credentials.user, credentials.password
        ));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let nc = format!("{count:08x}");
        let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        let mut header = format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
            credentials.user
        );
        if let Some(opaque) = opaque {
            header.push_str(&format!(", opaque=\"{opaque}\""));
        }
        if *algorithm_named {
            header.push_str(", algorithm=MD5");
        }
        header
    }
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
    fn a_client_answers_the_strongest_challenge() {
        let c = creds();
        let digest = Challenge::choose(
            [
                "Basic realm=\"cam\"",
                "Digest realm=\"IP Camera(C6583)\", nonce=\"8a7c\", stale=\"FALSE\"",
            ]
            .into_iter(),
        )
        .unwrap();
        let header = digest.authorization(&c, "DESCRIBE", "rtsp://h/cam", 1, "c0ffee");
        // Our own verifier (the simulator's) accepts it; so would the camera.
        let verifier = Credentials { ..c.clone() };
        let p = params(header.strip_prefix("Digest ").unwrap());
        let realm = &p.iter().find(|(k, _)| k == "realm").unwrap().1;
        assert_eq!(realm, "IP Camera(C6583)");
        let expected = digest_authorization(&verifier, "DESCRIBE", "rtsp://h/cam", realm, "8a7c");
        assert_eq!(header, expected);
        assert_eq!(
            Challenge::choose(["Basic realm=\"x\""].into_iter()).unwrap(),
            Challenge::Basic
        );
        let err =
            Challenge::choose(["Digest realm=\"x\", nonce=\"n\", algorithm=SHA-256"].into_iter())
                .unwrap_err();
        assert!(err.contains("SHA-256"), "{err}");
        assert!(Challenge::choose(std::iter::empty()).is_err());
    }

    #[test]
    fn qop_auth_follows_rfc2617() {
        // RFC 2617 section 3.5, with qop=auth: the published response.
        let c = Credentials {
            user: "Mufasa".into(),
            password: "Circle Of Life".into(),
        };
        let challenge = Challenge::choose(
            [
                "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
              nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
              opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
            ]
            .into_iter(),
        )
        .unwrap();
        let header = challenge.authorization(&c, "GET", "/dir/index.html", 1, "0a4f113b");
        assert!(
            header.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{header}"
        );
        assert!(header.contains("nc=00000001") && header.contains("opaque=\"5ccc069c"));
        assert!(verify(
            &c,
            Some(&header),
            "GET",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093"
        ));
    }

    #[test]
    fn debug_hides_the_password() {
        assert!(!format!("{:?}", creds()).contains("s3cret"));
    }
}
