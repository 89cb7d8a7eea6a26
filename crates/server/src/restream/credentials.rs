//! Who may read a restream. RTSP clients (ffmpeg, VLC, Frigate, Home Assistant) send what the
//! URL's user information holds: `rtsp://NAME:TOKEN@HOST:PORT/camera` with an API token as the
//! password (any name), checked like a bearer token, or a user's name and password, checked
//! like a login (rate-limited, failures audited) — either way its permissions and camera scope
//! hold here too. Basic only: Digest would need the secret itself, and the server keeps only
//! its digest — on a network where that matters, the password is as exposed as a bearer header
//! on plain HTTP (say so to users; a tunnel or VPN is the answer there).

use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine as _;
use lockstep_rtsp::message::Response;

use crate::auth::permission::Permission;
use crate::auth::{Auth, PasswordRefusal, Principal, Via};

/// How every API token starts (`auth::issue_token`): a password that does not is a user's.
const TOKEN_PREFIX: &str = "lst_";

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

pub async fn verify(auth: &Auth, given: Option<&str>, peer: IpAddr) -> Result<Verified, Response> {
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
            "credentials needed: rtsp://USER:PASSWORD@HOST:PORT/CAMERA (or an API token as the \
             password)",
        ));
    };
    let Some((name, token)) = basic_credentials(given) else {
        return Err(challenge(
            "use Basic authentication: a user's name and password, or an API token as the \
             password",
        ));
    };
    if !token.starts_with(TOKEN_PREFIX) {
        return match auth.check_password(&name, &token, peer).await {
            Ok(user) => Ok(Verified {
                header: given.to_owned(),
                principal: Principal {
                    name: user.name,
                    permissions: user.permissions,
                    cameras: user.cameras,
                    via: Via::Password,
                },
            }),
            // RTSP has no 429: 503 with Retry-After is its "come back later".
            Err(PasswordRefusal::Wait(wait)) => Err(Response::new(503)
                .header("Retry-After", wait.as_secs().max(1).to_string())
                .header("X-Error", "too many failed logins: try again later")),
            Err(PasswordRefusal::Failed(e)) => {
                tracing::warn!("restream: the user store failed: {e}");
                Err(Response::new(500).header("X-Error", "the credentials could not be checked"))
            }
            Err(PasswordRefusal::Wrong | PasswordRefusal::Off) => {
                Err(challenge("wrong name or password"))
            }
        };
    }
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

/// The name and password of a `Basic` authorization.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    (!password.is_empty()).then(|| (name.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_and_password_from_basic() {
        // "viewer:lst_abc"
        assert_eq!(
            basic_credentials("Basic dmlld2VyOmxzdF9hYmM="),
            Some(("viewer".into(), "lst_abc".into()))
        );
        assert_eq!(basic_credentials("Digest username=\"x\""), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        // "viewer:" has no password.
        assert_eq!(basic_credentials("Basic dmlld2VyOg=="), None);
    }
}
