//! The one place that says what each route needs, checked before any handler: a request
//! without credentials gets 401 (with `WWW-Authenticate`), one whose principal lacks the
//! permission or the camera gets 403, a browser session's state-changing request without its
//! CSRF token gets 403. The principal goes into the request's extensions for handlers that
//! filter (the camera list, signalling) or audit (exports).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::permission::Permission;
use super::{Principal, Via, CSRF_HEADER};
use crate::live::state::{ApiError, AppState};

/// What a route needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Need<'a> {
    /// Anyone: the health probe, the login page and call, the UI's static files (its data all
    /// comes from the API), CORS preflights.
    Public,
    /// Any authenticated principal.
    SignedIn,
    /// A permission, for one camera or (`None`) in general.
    Permission(Permission, Option<&'a str>),
}

/// The route table's requirements, by method and path.
pub fn need<'a>(method: &Method, path: &'a str) -> Need<'a> {
    if *method == Method::OPTIONS {
        return Need::Public;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let camera = segments.get(2).copied().filter(|s| !s.is_empty());
    match segments.as_slice() {
        ["api", "health"] | ["api", "login"] | ["api", "logout"] | ["login"] => Need::Public,
        ["metrics"] => Need::Permission(Permission::Metrics, None),
        ["api", "cameras"] | ["api", "ws"] => Need::Permission(Permission::View, None),
        // Adding, changing and removing cameras, and reading how one is configured.
        ["api", "cameras", _] if *method != Method::GET => {
            Need::Permission(Permission::Admin, None)
        }
        ["api", "cameras", _, "config"] => Need::Permission(Permission::Admin, None),
        ["api", "cameras" | "whep" | "media", ..] => Need::Permission(Permission::View, camera),
        ["api", "push" | "whip", ..] => Need::Permission(Permission::Publish, camera),
        ["api", "recordings", ..] => Need::Permission(Permission::Playback, camera),
        ["api", "talk", ..] => Need::Permission(Permission::Talk, camera),
        ["api", "tokens" | "users" | "audit" | "discover", ..] => {
            Need::Permission(Permission::Admin, None)
        }
        ["api", ..] => Need::SignedIn,
        _ => Need::Public,
    }
}

pub async fn check(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let need = need(request.method(), &path);
    // A public route (the UI's files: a dozen per page load) asks the store nothing.
    if need == Need::Public {
        return next.run(request).await;
    }
    let principal = match state.auth.principal(request.headers()) {
        Ok(principal) => principal,
        Err(reason) => {
            tracing::debug!("{peer}: {reason}");
            return unauthorized(reason);
        }
    };
    if let Err(refusal) = judge(&need, principal.as_ref(), &request) {
        if refusal.status() == StatusCode::UNAUTHORIZED {
            return unauthorized(refusal.message());
        }
        return refusal.into_response();
    }
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal);
    }
    next.run(request).await
}

/// Whether `principal` may make `request`, which needs `need`.
fn judge(
    need: &Need<'_>,
    principal: Option<&Principal>,
    request: &Request,
) -> Result<(), ApiError> {
    if *need == Need::Public {
        return Ok(());
    }
    let Some(principal) = principal else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "log in, or send an API token (Authorization: Bearer)",
        ));
    };
    if let Need::Permission(permission, camera) = need {
        if !principal.may(*permission, *camera) {
            let what = match camera {
                Some(camera) if principal.permissions.has(*permission) => {
                    format!(
                        "camera {camera:?} is not among {}'s cameras",
                        principal.name
                    )
                }
                _ => format!(
                    "{} lacks the {} permission",
                    principal.name,
                    permission.as_str()
                ),
            };
            return Err(ApiError::new(StatusCode::FORBIDDEN, what));
        }
    }
    if let Via::Session { csrf, .. } = &principal.via {
        let changes = !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let sent = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if changes && !super::secret::same(sent, csrf) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "a browser session's request that changes something carries its X-CSRF-Token \
                 (from /api/session)",
            ));
        }
    }
    Ok(())
}

fn unauthorized(reason: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, reason).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"lockstep\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_api_needs_what_it_should() {
        use Permission::*;
        let get = Method::GET;
        let post = Method::POST;
        let cases: &[(&Method, &str, Need<'_>)] = &[
            (&get, "/api/health", Need::Public),
            (&post, "/api/login", Need::Public),
            (&get, "/login", Need::Public),
            (&get, "/", Need::Public),
            (&get, "/app.js", Need::Public),
            (&Method::OPTIONS, "/api/whep/door", Need::Public),
            (&get, "/api/session", Need::SignedIn),
            (&get, "/api/nothing", Need::SignedIn),
            (&get, "/api/cameras", Need::Permission(View, None)),
            (
                &get,
                "/api/cameras/door",
                Need::Permission(View, Some("door")),
            ),
            (
                &post,
                "/api/whep/door",
                Need::Permission(View, Some("door")),
            ),
            (
                &Method::DELETE,
                "/api/whep/door/s1",
                Need::Permission(View, Some("door")),
            ),
            (
                &get,
                "/api/media/door",
                Need::Permission(View, Some("door")),
            ),
            (&get, "/api/ws", Need::Permission(View, None)),
            (
                &get,
                "/api/push/avatar",
                Need::Permission(Publish, Some("avatar")),
            ),
            (
                &post,
                "/api/whip/avatar",
                Need::Permission(Publish, Some("avatar")),
            ),
            (
                &get,
                "/api/recordings/door",
                Need::Permission(Playback, Some("door")),
            ),
            (
                &get,
                "/api/recordings/door/export.mp4",
                Need::Permission(Playback, Some("door")),
            ),
            (
                &post,
                "/api/talk/door",
                Need::Permission(Talk, Some("door")),
            ),
            (&get, "/metrics", Need::Permission(Metrics, None)),
            (&post, "/api/tokens", Need::Permission(Admin, None)),
            (
                &Method::DELETE,
                "/api/users/bob",
                Need::Permission(Admin, None),
            ),
            (&get, "/api/audit", Need::Permission(Admin, None)),
            (&post, "/api/discover", Need::Permission(Admin, None)),
            (&post, "/api/cameras/yard", Need::Permission(Admin, None)),
            (
                &Method::PUT,
                "/api/cameras/yard",
                Need::Permission(Admin, None),
            ),
            (
                &Method::DELETE,
                "/api/cameras/yard",
                Need::Permission(Admin, None),
            ),
            (
                &get,
                "/api/cameras/yard/config",
                Need::Permission(Admin, None),
            ),
            (
                &get,
                "/api/cameras/yard",
                Need::Permission(View, Some("yard")),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(&need(method, path), expected, "{method} {path}");
        }
    }
}
