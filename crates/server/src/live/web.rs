//! The web UI, embedded in the binary: plain ES modules, no bundler, served as they are in
//! `web/`.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
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
        "/timeline.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/timeline.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../../../web/style.css"),
    ),
];

pub fn router() -> Router<Arc<AppState>> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, content_type),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        body,
                    )
                        .into_response()
                }),
            )
        })
}
