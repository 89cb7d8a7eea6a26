//! The routes of authentication itself: log in and out, who am I, the run's token exchanged
//! for a session (`GET /login?token=`), and the admin's users, tokens and audit log.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::permission::{grant, CameraScope, Permissions};
use super::store::{SessionOwner, User};
use super::{check_name, password, secret, Auth, PasswordRefusal, Principal, Via, COOKIE};
use crate::live::state::{ApiError, AppState};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", get(login_page))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/session", get(session))
        .route("/api/tokens", get(list_tokens).post(add_token))
        .route("/api/tokens/{id}", delete(revoke_token))
        .route("/api/users", get(list_users).post(add_user))
        .route("/api/users/{name}", delete(remove_user))
        .route("/api/audit", get(audit_log))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The login page, or — with the run's token in the query — a session for it and the UI.
async fn login_page(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    let auth = &state.auth;
    let Some(token) = query.token else {
        return Ok(crate::live::web::asset(
            "text/html; charset=utf-8",
            crate::live::web::LOGIN_PAGE,
        ));
    };
    if !auth.is_run_token(&token) {
        auth.audit(
            "?",
            peer.ip(),
            "login failed",
            "a wrong run token in /login",
        );
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "that token is not this run's (it changes every time the server starts: use the \
             URL it printed last)",
        ));
    }
    let run = auth.run.as_ref().map(|r| r.id.clone()).unwrap_or_default();
    let cookie = open_session(auth, &SessionOwner::Run(run))?.0;
    auth.audit("run-token", peer.ip(), "login", "the run's token");
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    name: String,
    password: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(request): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let auth = &state.auth;
    store_of(auth)?;
    let address = peer.ip();
    let user = match auth
        .check_password(&request.name, &request.password, address)
        .await
    {
        Ok(user) => user,
        Err(PasswordRefusal::Wait(wait)) => {
            let secs = wait.as_secs().max(1);
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed logins: try again in {secs} s"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return Ok(response);
        }
        Err(PasswordRefusal::Failed(e)) => return Err(internal(&e)),
        Err(PasswordRefusal::Wrong | PasswordRefusal::Off) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong name or password",
            ))
        }
    };
    let (cookie, csrf) = open_session(auth, &SessionOwner::User(user.clone()))?;
    auth.audit(&user.name, address, "login", "password");
    let principal = Principal {
        name: user.name,
        permissions: user.permissions,
        cameras: user.cameras,
        via: Via::Session {
            csrf,
            cookie_hash: String::new(),
        },
    };
    let mut response = Json(principal.json()).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// A new session for `owner`: its `Set-Cookie` and its CSRF token.
fn open_session(auth: &Auth, owner: &SessionOwner) -> Result<(HeaderValue, String), ApiError> {
    let store = store_of(auth)?;
    let cookie = secret::new_secret("").map_err(|e| internal(&e))?;
    let csrf = secret::new_secret("").map_err(|e| internal(&e))?;
    store
        .add_session(
            &secret::digest(&cookie),
            owner,
            &csrf,
            auth.session_lifetime,
        )
        .map_err(|e| internal(&e))?;
    let value = session_cookie(auth, &cookie, auth.session_lifetime.as_secs());
    Ok((value, csrf))
}

fn session_cookie(auth: &Auth, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if auth.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Ends the session of the request's cookie (if any) and clears the cookie.
async fn logout(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let auth = &state.auth;
    // A public route: the guard resolved nothing; an ended session just gets its cookie cleared.
    if let (Some(store), Ok(Some(principal))) = (auth.store(), auth.principal(&headers)) {
        if let Via::Session { cookie_hash, .. } = &principal.via {
            if let Err(e) = store.remove_session(cookie_hash) {
                tracing::warn!("cannot end a session: {e}");
            }
            auth.audit(&principal.name, peer.ip(), "logout", "");
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(auth, "", 0));
    response
}

/// Who the request's credentials prove, with the CSRF token a browser session sends back.
async fn session(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(principal.json())
}

/// What a new user or token may do: a role, or a permission list; optionally some cameras.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    role: Option<String>,
    permissions: Option<String>,
    cameras: Option<String>,
}

impl Grant {
    fn resolve(&self) -> Result<(Permissions, CameraScope), ApiError> {
        grant(
            self.role.as_deref(),
            self.permissions.as_deref(),
            self.cameras.as_deref(),
        )
        .map_err(bad_request)
    }
}

#[derive(Debug, Deserialize)]
struct NewToken {
    name: String,
    #[serde(flatten)]
    grant: Grant,
}

/// Creates an API token; its secret is in this answer only.
async fn add_token(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Json(request): Json<NewToken>,
) -> Result<Response, ApiError> {
    let auth = &state.auth;
    check_name("token", &request.name).map_err(bad_request)?;
    let (permissions, cameras) = request.grant.resolve()?;
    let (token, info) = super::issue_token(
        store_of(auth)?,
        &request.name,
        permissions,
        cameras,
        &principal.name,
    )
    .map_err(|e| internal(&e))?;
    auth.audit(
        &principal.name,
        peer.ip(),
        "token created",
        &format!("{} ({})", info.name, info.id),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": info.id, "name": info.name, "token": token,
                    "permissions": permissions.list()})),
    )
        .into_response())
}

async fn list_tokens(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let tokens = store_of(&state.auth)?.tokens().map_err(|e| internal(&e))?;
    Ok(Json(Value::Array(
        tokens
            .iter()
            .map(|t| {
                json!({"id": t.id, "name": t.name, "permissions": t.permissions.list(),
                       "cameras": t.cameras.stored(), "created_ms": t.created_ms,
                       "created_by": t.created_by})
            })
            .collect(),
    )))
}

async fn revoke_token(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let auth = &state.auth;
    if !store_of(auth)?
        .revoke_token(&id)
        .map_err(|e| internal(&e))?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no token {id:?}"),
        ));
    }
    auth.audit(&principal.name, peer.ip(), "token revoked", &id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct NewUser {
    name: String,
    password: String,
    #[serde(flatten)]
    grant: Grant,
}

async fn add_user(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Json(request): Json<NewUser>,
) -> Result<StatusCode, ApiError> {
    let auth = &state.auth;
    let store = store_of(auth)?.clone();
    check_name("user", &request.name).map_err(bad_request)?;
    let (permissions, cameras) = request.grant.resolve()?;
    let user = User {
        name: request.name.clone(),
        permissions,
        cameras,
    };
    let password = request.password;
    let added = tokio::task::spawn_blocking(move || {
        let hash =
            password::hash(&password).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?;
        store
            .put_user(&user, &hash, false)
            .map_err(|e| internal(&e))
    })
    .await
    .map_err(|e| internal(&e))??;
    if !added {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a user {:?} exists", request.name),
        ));
    }
    auth.audit(
        &principal.name,
        peer.ip(),
        "user added",
        &format!("{} ({permissions})", request.name),
    );
    Ok(StatusCode::CREATED)
}

async fn list_users(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let users = store_of(&state.auth)?.users().map_err(|e| internal(&e))?;
    Ok(Json(Value::Array(
        users
            .iter()
            .map(|u| {
                json!({"name": u.name, "permissions": u.permissions.list(),
                            "cameras": u.cameras.stored()})
            })
            .collect(),
    )))
}

async fn remove_user(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let auth = &state.auth;
    if !store_of(auth)?
        .remove_user(&name)
        .map_err(|e| internal(&e))?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no user {name:?}"),
        ));
    }
    auth.audit(&principal.name, peer.ip(), "user removed", &name);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
}

async fn audit_log(
    State(state): State<Arc<AppState>>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    let entries = store_of(&state.auth)?
        .audit_log(limit)
        .map_err(|e| internal(&e))?;
    Ok(Json(json!(entries)))
}

fn store_of(auth: &Auth) -> Result<&Arc<super::store::Store>, ApiError> {
    auth.store().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "authentication is off on this server (server.auth = \"off\")",
        )
    })
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn internal(e: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!("auth: {e}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the user store failed; see the server log",
    )
}
