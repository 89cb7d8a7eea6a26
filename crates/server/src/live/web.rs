//! The web UI, embedded in the binary: plain ES modules, no bundler, served as they are in
//! `web/`.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::state::AppState;

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../../../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/app.js"),
    ),
    (
        "/whep.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/whep.js"),
    ),
    (
        "/publish.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/publish.js"),
    ),
    (
        "/talk.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/talk.js"),
    ),
    (
        "/discover.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/discover.js"),
    ),
    (
        "/signalling.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/signalling.js"),
    ),
    (
        "/sync-meter.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/sync-meter.js"),
    ),
    (
        "/beep-onset.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/beep-onset.js"),
    ),
    (
        "/timeline.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/timeline.js"),
    ),
    (
        "/pattern-probe.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/pattern-probe.js"),
    ),
    (
        "/figures.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/figures.js"),
    ),
    (
        "/player/player.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/player/player.js"),
    ),
    (
        "/player/audio-ring.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/player/audio-ring.js"),
    ),
    (
        "/player/audio-out.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/player/audio-out.js"),
    ),
    (
        "/player/decoder-worker.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/player/decoder-worker.js"),
    ),
    (
        "/player/player-meter.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/player/player-meter.js"),
    ),
    (
        "/login.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/login.js"),
    ),
    (
        "/session.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/session.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../../../web/style.css"),
    ),
];

/// The UI is cross-origin isolated (it embeds nothing from elsewhere), so the player's decoder
/// Worker and audio thread can share the audio ring (`SharedArrayBuffer`).
const CROSS_ORIGIN_ISOLATED: [(header::HeaderName, &str); 2] = [
    (
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        header::HeaderName::from_static("cross-origin-embedder-policy"),
        "require-corp",
    ),
];

/// The UI runs only the server's own scripts (no inline script, no `eval`), talks only to the
/// server, plays recordings from it and live media from WebRTC streams, and may not be framed
/// by another site (clickjacking).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router() -> Router<Arc<AppState>> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(path, get(move || async move { asset(content_type, body) }))
        })
}

/// A file of the UI with the headers every UI file carries.
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        CROSS_ORIGIN_ISOLATED,
        body,
    )
        .into_response()
}

/// The login page (served by `/login`, which also takes the run's token).
pub const LOGIN_PAGE: &str = include_str!("../../../../web/login.html");
