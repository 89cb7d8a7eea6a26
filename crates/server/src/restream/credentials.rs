//! Who may read a restream. RTSP clients (ffmpeg, VLC, Frigate, Home Assistant) send what the
//! URL's user information holds: `rtsp://NAME:TOKEN@HOST:PORT/camera` with an API token as the
//! password (any name), checked like a bearer token, so its permissions and camera scope hold
//! here too. Basic only: Digest would need the secret itself, and the server keeps only its
//! digest — on a network where that matters, the token is as exposed as a bearer header on
//! plain HTTP (say so to users; a tunnel or VPN is the answer there).

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine as _;
use lockstep_rtsp::message::Response;

use crate::auth::permission::Permission;
use crate::auth::{Auth, Principal};

/// The credentials a connection proved, with the header that proved them.
#[derive(Debug, Clone)]
pub struct Verified {
    pub header: String,
    principal: Principal,
}

impl Verified {
    pub fn may_view(&self, camera: &str) -> bool {
        self.principal.may(Permission::View, Some(camera))
    }
}

pub async fn verify(auth: &Auth, given: Option<&str>) -> Result<Verified, Response> {
    if !auth.is_on() {
        return Ok(Verified {
            header: given.unwrap_or_default().to_owned(),
            principal: Principal::anyone(),
        });
    }
    let challenge = |reason: &str| {
        Response::new(401)
            .header("WWW-Authenticate", "Basic realm=\"lockstep\"")
            .header("X-Error", reason)
    };
    let Some(given) = given else {
        return Err(challenge(
            "credentials needed: rtsp://NAME:API-TOKEN@HOST:PORT/CAMERA",
        ));
    };
    let Some(token) = basic_password(given) else {
        return Err(challenge(
            "use Basic authentication with an API token as the password",
        ));
    };
    let mut headers = HeaderMap::new();
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return Err(challenge("the password is not a token this server issued"));
    };
    headers.insert(header::AUTHORIZATION, bearer);
    match auth.principal(&headers) {
        Ok(Some(principal)) => Ok(Verified {
            header: given.to_owned(),
            principal,
        }),
        Ok(None) => Err(challenge("credentials needed")),
        Err(reason) => Err(challenge(reason)),
    }
}

/// The password of a `Basic` authorization.
fn basic_password(value: &str) -> Option<String> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_from_basic() {
        // "viewer:lst_abc"
        assert_eq!(
            basic_password("Basic dmlld2VyOmxzdF9hYmM=").as_deref(),
            Some("lst_abc")
        );
        assert_eq!(basic_password("Digest username=\"x\""), None);
        assert_eq!(basic_password("Basic !!!"), None);
        // "viewer:" has no password.
        assert_eq!(basic_password("Basic dmlld2VyOg=="), None);
    }
}
