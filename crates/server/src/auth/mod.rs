//! Who may use the server. Every request is resolved to a [`Principal`] — from an API token
//! (`Authorization: Bearer`), a browser session cookie, or the run's token — before any handler
//! runs, and checked against what its route needs (`guard.rs`). Users, tokens and sessions live
//! in `auth.sqlite` beside the recordings (`store.rs`).
//!
//! A server without users takes the run's token, made at start and printed in a URL (as
//! notebook servers do): whoever can read the terminal is the admin until one is created. Such a
//! server listens on loopback only (`config.rs` refuses anything else).

mod api;
mod guard;
mod login_limit;
pub mod password;
pub mod permission;
pub mod secret;
pub mod store;

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

pub use api::router;
pub use guard::{check, need, Need};
use login_limit::LoginLimit;
use permission::{CameraScope, Permission, Permissions};
use store::{SessionOwner, Store};

/// The session cookie's name.
pub const COOKIE: &str = "lockstep_session";
/// The header a browser session's state-changing requests carry (its value from `/api/session`).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who is asking, and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// For the audit log: a user's name, `token:NAME` or `run-token`.
    pub name: String,
    pub permissions: Permissions,
    pub cameras: CameraScope,
    pub via: Via,
}

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Authentication is off (`server.auth = "off"`, loopback only).
    Open,
    /// A browser session: its state-changing requests carry this CSRF token, and its cookie's
    /// hash names it in the store.
    Session {
        csrf: String,
        cookie_hash: String,
    },
    Token,
    RunToken,
    /// A user's name and password on each connection (RTSP clients: no cookies there).
    Password,
}

impl Principal {
    /// Anyone, with every permission: what every request is when authentication is off.
    pub fn anyone() -> Principal {
        Principal {
            name: "anyone".into(),
            permissions: Permissions::ALL,
            cameras: CameraScope::All,
            via: Via::Open,
        }
    }

    pub fn may(&self, permission: Permission, camera: Option<&str>) -> bool {
        self.permissions.has(permission) && camera.is_none_or(|c| self.cameras.covers(c))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "permissions": self.permissions.list(),
            "cameras": match &self.cameras {
                CameraScope::All => serde_json::Value::Null,
                CameraScope::Only(names) => serde_json::json!(names),
            },
            "via": match self.via {
                Via::Open => "open",
                Via::Session { .. } => "session",
                Via::Token => "token",
                Via::RunToken => "run-token",
                Via::Password => "password",
            },
            "csrf": match &self.via {
                Via::Session { csrf, .. } => Some(csrf),
                _ => None,
            },
        })
    }
}

/// The run's token: the admin's key while no user exists.
#[derive(Debug)]
struct RunToken {
    /// Names this run in the sessions opened with the token (they end with the run).
    id: String,
    digest: String,
}

/// Authentication as configured for one server run.
#[derive(Debug)]
pub struct Auth {
    /// `None`: authentication is off.
    store: Option<Arc<Store>>,
    run: Option<RunToken>,
    limit: Mutex<LoginLimit>,
    pub session_lifetime: Duration,
    /// Cookies say `Secure` (served over TLS).
    pub secure_cookies: bool,
}

/// What `Auth::open` made: the state, and the run's token when there is one (shown once).
#[derive(Debug)]
pub struct Opened {
    pub auth: Auth,
    pub run_token: Option<String>,
}

impl Auth {
    /// Authentication off: every request may do everything.
    pub fn off() -> Auth {
        Auth {
            store: None,
            run: None,
            limit: Mutex::default(),
            session_lifetime: Duration::ZERO,
            secure_cookies: false,
        }
    }

    /// Opens the store in `dir`; with no user in it, makes the run's token.
    pub fn open(dir: &Path, session_lifetime: Duration) -> std::io::Result<Opened> {
        let store = Store::open(dir)?;
        let users = store.user_count().map_err(std::io::Error::other)?;
        let run_token = if users == 0 {
            Some(secret::new_secret("lsr_")?)
        } else {
            None
        };
        let run = match &run_token {
            Some(token) => Some(RunToken {
                id: secret::new_secret("")?,
                digest: secret::digest(token),
            }),
            None => None,
        };
        Ok(Opened {
            auth: Auth {
                store: Some(Arc::new(store)),
                run,
                limit: Mutex::default(),
                session_lifetime,
                secure_cookies: false,
            },
            run_token,
        })
    }

    pub fn is_on(&self) -> bool {
        self.store.is_some()
    }

    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// The principal a request's credentials prove, `Ok(None)` when it carries none, `Err`
    /// when what it carries is wrong (an unknown token, an expired session).
    pub fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, &'static str> {
        let Some(store) = &self.store else {
            return Ok(Some(Principal::anyone()));
        };
        if let Some(token) = bearer(headers) {
            let digest = secret::digest(token);
            if self
                .run
                .as_ref()
                .is_some_and(|run| secret::same(&run.digest, &digest))
            {
                return Ok(Some(run_admin()));
            }
            return match store.token_by_hash(&digest) {
                Ok(Some(token)) => Ok(Some(Principal {
                    name: format!("token:{}", token.name),
                    permissions: token.permissions,
                    cameras: token.cameras,
                    via: Via::Token,
                })),
                Ok(None) => {
                    Err("the bearer token is not one this server issued (or it was revoked)")
                }
                Err(e) => {
                    tracing::warn!("auth store: {e}");
                    Err("the credentials could not be checked")
                }
            };
        }
        if let Some(cookie) = cookie(headers, COOKIE) {
            let cookie_hash = secret::digest(cookie);
            return match store.session(&cookie_hash) {
                Ok(Some(session)) => self.session_principal(session, cookie_hash),
                Ok(None) => Err("the session has ended: log in again"),
                Err(e) => {
                    tracing::warn!("auth store: {e}");
                    Err("the credentials could not be checked")
                }
            };
        }
        Ok(None)
    }

    fn session_principal(
        &self,
        session: store::Session,
        cookie_hash: String,
    ) -> Result<Option<Principal>, &'static str> {
        let via = Via::Session {
            csrf: session.csrf,
            cookie_hash,
        };
        match session.owner {
            SessionOwner::User(user) => Ok(Some(Principal {
                name: user.name,
                permissions: user.permissions,
                cameras: user.cameras,
                via,
            })),
            SessionOwner::Run(id) if self.run.as_ref().is_some_and(|run| run.id == id) => {
                Ok(Some(Principal { via, ..run_admin() }))
            }
            SessionOwner::Run(_) => Err("the session was opened with an earlier run's token"),
        }
    }

    /// Whether `token` is the run's token.
    fn is_run_token(&self, token: &str) -> bool {
        self.run
            .as_ref()
            .is_some_and(|run| secret::same(&run.digest, &secret::digest(token)))
    }

    /// Records an event in the audit log (a failure to write it is logged, not fatal).
    pub fn audit(&self, actor: &str, address: IpAddr, action: &str, detail: &str) {
        let Some(store) = &self.store else { return };
        let entry = store::AuditEntry {
            at_ms: store::now_ms(),
            actor: actor.to_owned(),
            address: address.to_string(),
            action: action.to_owned(),
            detail: detail.to_owned(),
        };
        if let Err(e) = store.audit(&entry) {
            tracing::warn!("cannot write the audit log: {e}");
        }
    }

    fn limit(&self) -> std::sync::MutexGuard<'_, LoginLimit> {
        self.limit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user `name` whose password `password` is, asked from `address`: rate-limited per
    /// address and account (failures wait 1 s doubling), each failure audited. For the login
    /// route and for RTSP clients that give a user's name and password.
    pub async fn check_password(
        &self,
        name: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<store::User, PasswordRefusal> {
        let Some(store) = self.store.clone() else {
            return Err(PasswordRefusal::Off);
        };
        // A name no user can have (a body may hold 2 MB of one) is not worth a limiter entry,
        // an audit line or a hash; nor is a password longer than anyone types.
        if check_name("user", name).is_err() || password.len() > password::MAX_BYTES {
            return Err(PasswordRefusal::Wrong);
        }
        self.limit()
            .check(name, address, Instant::now())
            .map_err(PasswordRefusal::Wait)?;
        let (account, given) = (name.to_owned(), password.to_owned());
        // argon2id costs tens of milliseconds of CPU: never on an async thread.
        let user = tokio::task::spawn_blocking(move || {
            let found = store.user_with_hash(&account)?;
            let stored = found.as_ref().map(|(_, hash)| hash.as_str());
            let valid = password::verify(&given, stored);
            Ok::<_, rusqlite::Error>(found.filter(|_| valid).map(|(user, _)| user))
        })
        .await
        .map_err(|e| PasswordRefusal::Failed(e.to_string()))?
        .map_err(|e| PasswordRefusal::Failed(e.to_string()))?;
        let Some(user) = user else {
            self.limit().failed(name, address, Instant::now());
            self.audit(name, address, "login failed", "wrong name or password");
            return Err(PasswordRefusal::Wrong);
        };
        self.limit().succeeded(&user.name, address);
        Ok(user)
    }
}

/// Why a name and password were not accepted.
#[derive(Debug)]
pub enum PasswordRefusal {
    /// Authentication is off.
    Off,
    Wrong,
    /// Too many failures: wait this long.
    Wait(Duration),
    /// The store failed (the reason is for the log).
    Failed(String),
}

/// A new API token in `store`: its secret (to be shown once) and what is kept of it.
pub fn issue_token(
    store: &Store,
    name: &str,
    permissions: Permissions,
    cameras: CameraScope,
    created_by: &str,
) -> anyhow::Result<(String, store::TokenInfo)> {
    let token = secret::new_secret("lst_")?;
    let info = store::TokenInfo {
        id: secret::new_secret("")?[..10].to_owned(),
        name: name.to_owned(),
        permissions,
        cameras,
        created_ms: store::now_ms(),
        created_by: created_by.to_owned(),
    };
    store.add_token(&info, &secret::digest(&token))?;
    Ok((token, info))
}

/// Names of users and tokens: 1 to 64 letters, digits, `-`, `_`, `.`, `@`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let fine = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if fine {
        Ok(())
    } else {
        Err(format!(
            "a {what} name is 1 to 64 letters, digits, '-', '_', '.' or '@', not {name:?}"
        ))
    }
}

fn run_admin() -> Principal {
    Principal {
        name: "run-token".into(),
        permissions: Permissions::ALL,
        cameras: CameraScope::All,
        via: Via::RunToken,
    }
}

/// The credentials a request presents, unchecked: the bearer token and the session cookie.
pub fn presented(headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    (bearer(headers), cookie(headers, COOKIE))
}

/// The token of `Authorization: Bearer TOKEN`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_from_their_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "bearer  lst_abc ".parse().expect("value"),
        );
        headers.append(
            header::COOKIE,
            "a=1; lockstep_session=s3; b=".parse().expect("value"),
        );
        assert_eq!(bearer(&headers), Some("lst_abc"));
        assert_eq!(cookie(&headers, COOKIE), Some("s3"));
        assert_eq!(cookie(&headers, "b"), None);
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().expect("value"));
        assert_eq!(bearer(&headers), None);
    }
}
