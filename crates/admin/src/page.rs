//! The status page for a person, at `/` of the admin listener: log in with an admin access token
//! (an HttpOnly, `SameSite=Strict` session cookie), then an overview of the store and its groups,
//! upstream health, live fills, recent errors, recent denials (apart, repeats counted on one row)
//! and access tokens, with purge and revoke buttons that each go through a confirmation step.
//!
//! Server-rendered: the page asks the admin API itself (in process, as the logged-in admin, so it
//! shows exactly what the API answers and its actions are the API's, audit log included), reads
//! each answer back into the API's own types (`api.rs`), and works as plain HTML forms. Each
//! group's last 24 hours of traffic is an inline SVG chart drawn here too (`chart.rs`). One
//! stylesheet and one small script, compiled into the binary, are all it loads; the script polls
//! the API (`fetch` with the session cookie) to move the fills' progress bars and refresh sizes
//! while you watch.
//!
//! Sessions live in memory (a restart logs everyone out): a random 256-bit id in the cookie maps
//! to the token id and a per-session CSRF token, for 12 hours at most; the token is checked to be
//! still active and admin on every use. Every state-changing form carries the CSRF token (checked
//! here). The API takes the cookie too ([`with_page`] marks such a request with a
//! [`SessionAdmin`] for `auth.rs`), for anything but `GET`/`HEAD` only with the session's CSRF
//! token in `X-CSRF-Token`.

mod chart;
mod render;
mod text;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use access::{Access, AuthError};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Router};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tower::ServiceExt as _;

use crate::api::{ErrorEnvelope, ErrorView, JobStarted, StoreView};
use render::{Dashboard, Notice};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "depproxy_session";
/// The header the page's script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Beyond this many live sessions, the oldest is dropped.
const MAX_SESSIONS: usize = 1024;
/// Recent errors shown, and recent denials.
const EVENTS_SHOWN: usize = 20;

const CSS: &str = include_str!("../assets/page.css");
const JS: &str = include_str!("../assets/page.js");

/// Only what this origin serves; no inline script or style, no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The status page's sessions (in memory).
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
    lifetime: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions { by_id: Mutex::default(), lifetime: SESSION_LIFETIME }
    }
}

#[derive(Clone)]
struct Session {
    token_id: String,
    csrf: String,
    created: Instant,
}

impl Sessions {
    fn create(&self, token_id: &str) -> (String, String) {
        let id = random_hex();
        let csrf = random_hex();
        let mut sessions = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, session| session.created.elapsed() < self.lifetime);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) =
                sessions.iter().min_by_key(|(_, session)| session.created).map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        let session = Session { token_id: token_id.to_owned(), csrf: csrf.clone(), created: Instant::now() };
        sessions.insert(id.clone(), session);
        (id, csrf)
    }

    fn get(&self, id: &str) -> Option<Session> {
        let mut sessions = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let session = sessions.get(id)?;
        if session.created.elapsed() >= self.lifetime {
            sessions.remove(id);
            return None;
        }
        Some(session.clone())
    }

    fn remove(&self, id: &str) {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }
}

/// 256 random bits, hex.
fn random_hex() -> String {
    rand::random::<[u8; 32]>().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// On an admin API request: the admin whose status-page session it comes with (the session
/// cookie, and for anything but `GET`/`HEAD` its CSRF token in `X-CSRF-Token`). Only
/// [`with_page`] puts it there — a client cannot — and `auth.rs` takes it as an admin token.
#[derive(Debug, Clone)]
pub struct SessionAdmin {
    /// The token's name (for the audit log).
    pub name: String,
}

/// A live session of the request at hand.
struct Live {
    /// The token's name.
    name: String,
    session_id: String,
    csrf: String,
}

/// What the page's handlers work with.
#[derive(Clone)]
struct PageState {
    access: Arc<Access>,
    sessions: Arc<Sessions>,
    /// The admin API (without the page), called in process.
    api: Router,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The session a request's cookie names, if it is live and its token still an active admin token.
async fn session(state: &PageState, headers: &HeaderMap) -> Option<Live> {
    let id = cookie_value(headers, SESSION_COOKIE)?;
    let session = state.sessions.get(id)?;
    let token = state.access.tokens().active(&session.token_id).await.ok().flatten();
    let Some(token) = token.filter(|token| token.admin) else {
        state.sessions.remove(id);
        return None;
    };
    state.access.tokens().note_use(&token.id);
    Some(Live { name: token.name.clone(), session_id: id.to_owned(), csrf: session.csrf })
}

/// Marks an API request that comes with a live status-page session (and, for anything but
/// `GET`/`HEAD`, the session's CSRF token in `X-CSRF-Token`) with its [`SessionAdmin`]. A request
/// with an `Authorization` header is left to it.
async fn cookie_auth(State(state): State<PageState>, mut request: Request, next: Next) -> Response {
    request.extensions_mut().remove::<SessionAdmin>();
    if !request.headers().contains_key(header::AUTHORIZATION)
        && let Some(live) = session(&state, request.headers()).await
    {
        let method = request.method();
        let csrf_ok = *method == Method::GET
            || *method == Method::HEAD
            || request
                .headers()
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|sent| same_secret(sent, &live.csrf));
        if csrf_ok {
            request.extensions_mut().insert(SessionAdmin { name: live.name });
        }
    }
    next.run(request).await
}

/// The admin API `api` with the status page: its routes (`/`, `/login`, `/logout`, `/ui/…`), and
/// the API taking the page's session cookie besides admin tokens.
pub fn with_page(api: Router, access: Arc<Access>) -> Router {
    let state = PageState { access, sessions: Arc::new(Sessions::default()), api: api.clone() };
    let api = api.layer(axum::middleware::from_fn_with_state(state.clone(), cookie_auth));
    Router::new()
        .route("/", axum::routing::get(index))
        .route("/login", axum::routing::post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/ui/purge", axum::routing::post(purge_confirm))
        .route("/ui/purge/confirm", axum::routing::post(purge))
        .route("/ui/revoke", axum::routing::post(revoke_confirm))
        .route("/ui/revoke/confirm", axum::routing::post(revoke))
        .route("/ui/page.css", axum::routing::get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/ui/page.js", axum::routing::get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .with_state(state)
        .merge(api)
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `303 See Other` to `location` (after a form's POST, so a reload does not repeat it).
fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn set_cookie(response: &mut Response, value: &str, max_age: u64) {
    let cookie = format!("{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn client_of(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| access::canonical(peer.ip()))
}

/// Percent-encodes a value for a URL path segment or query.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What the admin API answered to an in-process call.
struct Answer {
    status: StatusCode,
    body: axum::body::Bytes,
}

impl Answer {
    /// The body of a success read into the API's own type, else a line saying what went wrong.
    fn typed<T: serde::de::DeserializeOwned>(self) -> Result<T, String> {
        if !self.status.is_success() {
            return Err(self.problem());
        }
        serde_json::from_slice(&self.body).map_err(|error| format!("unreadable answer: {error}"))
    }

    /// `404 Not Found no job "x"`: the status and the error envelope's first message.
    fn problem(&self) -> String {
        let envelope = serde_json::from_slice::<ErrorEnvelope>(&self.body).ok();
        let message = envelope.as_ref().and_then(ErrorEnvelope::message).unwrap_or("");
        format!("{} {message}", self.status).trim().to_owned()
    }
}

/// Calls the admin API in process as the logged-in admin.
async fn api(state: &PageState, admin: &Live, parts: &Parts, method: Method, path: &str) -> Answer {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty());
    let mut request = match request {
        Ok(request) => request,
        Err(error) => {
            let error = ErrorView { code: "UNSUPPORTED".into(), message: error.to_string(), detail: None };
            let body = serde_json::to_vec(&ErrorEnvelope { errors: vec![error] }).unwrap_or_default();
            return Answer { status: StatusCode::BAD_REQUEST, body: body.into() };
        }
    };
    if let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        request.extensions_mut().insert(*peer);
    }
    request.extensions_mut().insert(SessionAdmin { name: admin.name.clone() });
    let response = match state.api.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 16 << 20).await.unwrap_or_default();
    Answer { status, body }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Notices {
    done: Option<String>,
    group: Option<String>,
    job: Option<String>,
    token: Option<String>,
}

async fn index(State(state): State<PageState>, Query(notices): Query<Notices>, request: Request) -> Response {
    let parts = request.into_parts().0;
    let Some(admin) = session(&state, &parts.headers).await else {
        let mut response = html(StatusCode::OK, render::login(None));
        if cookie_value(&parts.headers, SESSION_COOKIE).is_some() {
            set_cookie(&mut response, "", 0);
        }
        return response;
    };
    let groups = api(&state, &admin, &parts, Method::GET, "/api/v1/groups").await.typed();
    let upstreams = api(&state, &admin, &parts, Method::GET, "/api/v1/upstreams").await.typed();
    let fills = api(&state, &admin, &parts, Method::GET, "/api/v1/fills").await.typed();
    let events_path = format!("/api/v1/events?kind=error,warning&limit={EVENTS_SHOWN}");
    let events = api(&state, &admin, &parts, Method::GET, &events_path).await.typed();
    let denials_path = format!("/api/v1/events?kind=denied&limit={EVENTS_SHOWN}");
    let denials = api(&state, &admin, &parts, Method::GET, &denials_path).await.typed();
    let tokens = api(&state, &admin, &parts, Method::GET, "/api/v1/tokens").await.typed();
    let notice = match (notices.done.as_deref(), notices.job, notices.token) {
        (Some("purge"), Some(job), _) => {
            let path = format!("/api/v1/jobs/{}", encode(&job));
            let state_now = api(&state, &admin, &parts, Method::GET, &path).await.typed().ok();
            Some(Notice::Purge { group: notices.group.unwrap_or_default(), job, state: state_now })
        }
        (Some("revoked"), _, Some(token)) => Some(Notice::Revoked { token }),
        _ => None,
    };
    let view = Dashboard {
        admin: admin.name.clone(),
        csrf: admin.csrf.clone(),
        groups,
        upstreams,
        fills,
        events,
        denials,
        tokens,
        notice,
    };
    html(StatusCode::OK, render::dashboard(&view))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Fields {
    token: String,
    csrf: String,
    group: String,
    name: String,
}

/// The request's parts and its form (missing fields empty; a body that is no form: all empty).
async fn form(state: &PageState, request: Request) -> (Parts, Fields) {
    let (parts, body) = request.into_parts();
    let fields = Form::<Fields>::from_request(Request::from_parts(parts.clone(), body), state)
        .await
        .map(|Form(fields)| fields)
        .unwrap_or_default();
    (parts, fields)
}

async fn login(State(state): State<PageState>, request: Request) -> Response {
    let (parts, fields) = form(&state, request).await;
    let client = client_of(&parts);
    let refused = |status: StatusCode, message: String| {
        tracing::warn!(target: "depproxy::audit", event = "login_refused", %client, reason = %message,
            "status page login refused");
        html(status, render::login(Some(&message)))
    };
    let token = match state.access.authenticate_admin(fields.token.trim(), client).await {
        Ok(token) => token,
        Err(AuthError::RateLimited(wait)) => {
            let message = format!(
                "Too many failed logins from this address; retry in {}.",
                telemetry::retry_wait(wait)
            );
            return refused(StatusCode::TOO_MANY_REQUESTS, message);
        }
        Err(AuthError::Rejected | AuthError::NotOurs | AuthError::Expired) => {
            return refused(StatusCode::UNAUTHORIZED, "That is not an active access token.".to_owned());
        }
        Err(AuthError::Metadata(error)) => {
            tracing::error!(%error, "status page login: token lookup failed");
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                render::login(Some("Internal error (see the server log).")),
            );
        }
    };
    if !token.admin {
        tracing::warn!(target: "depproxy::audit", token = %token.name, %client, "status page login refused: not an admin token");
        return html(StatusCode::FORBIDDEN, render::login(Some("That token may pull, but not administer.")));
    }
    let (id, _) = state.sessions.create(&token.id);
    tracing::info!(target: "depproxy::audit", admin = %token.name, %client, "status page login");
    let mut response = see_other("/");
    set_cookie(&mut response, &id, SESSION_LIFETIME.as_secs());
    response
}

/// A form posted from a live session with its CSRF token: `Err` is the answer.
async fn checked_form(state: &PageState, request: Request) -> Result<(Parts, Fields, Live), Response> {
    let (parts, fields) = form(state, request).await;
    let admin = checked(state, &parts, &fields).await?;
    Ok((parts, fields, admin))
}

/// [`checked_form`] for a form that names a group: the group must be a valid path.
async fn checked_group_form(state: &PageState, request: Request) -> Result<(Parts, Fields, Live), Response> {
    let (parts, fields, admin) = checked_form(state, request).await?;
    if let Err(message) = valid_group(&fields.group) {
        return Err(html(
            StatusCode::BAD_REQUEST,
            render::problem("No such group", &message, Some(&admin.csrf)),
        ));
    }
    Ok((parts, fields, admin))
}

/// The session of a form's request, with the form's CSRF token checked: `Err` is the answer.
async fn checked(state: &PageState, parts: &Parts, fields: &Fields) -> Result<Live, Response> {
    let Some(admin) = session(state, &parts.headers).await else {
        return Err(html(
            StatusCode::UNAUTHORIZED,
            render::login(Some("Your session has ended; log in again.")),
        ));
    };
    if !same_secret(&fields.csrf, &admin.csrf) {
        tracing::warn!(target: "depproxy::audit", admin = %admin.name, client = %client_of(parts), "status page form refused: CSRF token missing or wrong");
        let message = "This form is not from your current session (its CSRF token does not match). Reload the page and try again.";
        return Err(html(StatusCode::FORBIDDEN, render::problem("Refused", message, Some(&admin.csrf))));
    }
    Ok(admin)
}

async fn logout(State(state): State<PageState>, request: Request) -> Response {
    let (_, _, admin) = match checked_form(&state, request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    state.sessions.remove(&admin.session_id);
    tracing::info!(target: "depproxy::audit", admin = %admin.name, "status page logout");
    let mut response = see_other("/");
    set_cookie(&mut response, "", 0);
    response
}

fn valid_group(group: &str) -> Result<(), String> {
    oci::GroupPath::parse(group).map(|_| ()).map_err(|error| error.message)
}

async fn purge_confirm(State(state): State<PageState>, request: Request) -> Response {
    let (parts, fields, admin) = match checked_group_form(&state, request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let stats: Option<StoreView> =
        api(&state, &admin, &parts, Method::GET, "/api/v1/groups").await.typed().ok();
    let group_stats =
        stats.and_then(|stats| stats.groups.into_iter().find(|group| group.group == fields.group));
    html(StatusCode::OK, render::confirm_purge(&admin.csrf, &fields.group, group_stats.as_ref()))
}

async fn purge(State(state): State<PageState>, request: Request) -> Response {
    let (parts, fields, admin) = match checked_group_form(&state, request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    // Group paths are `[a-z0-9._-]` segments separated by `/`: safe in the path as they are.
    let path = format!("/api/v1/groups/{}/cache", fields.group);
    let answer = api(&state, &admin, &parts, Method::DELETE, &path).await;
    let status = answer.status;
    let started: JobStarted = match answer.typed() {
        Ok(started) => started,
        Err(problem) => {
            let status = if status.is_success() { StatusCode::INTERNAL_SERVER_ERROR } else { status };
            return html(status, render::problem("Purge failed", &problem, Some(&admin.csrf)));
        }
    };
    see_other(&format!("/?done=purge&group={}&job={}", encode(&fields.group), encode(&started.job)))
}

async fn revoke_confirm(State(state): State<PageState>, request: Request) -> Response {
    let (_, fields, admin) = match checked_form(&state, request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    if fields.name.is_empty() {
        return html(StatusCode::BAD_REQUEST, render::problem("No token", "Which token?", Some(&admin.csrf)));
    }
    html(StatusCode::OK, render::confirm_revoke(&admin.csrf, &fields.name, fields.name == admin.name))
}

async fn revoke(State(state): State<PageState>, request: Request) -> Response {
    let (parts, fields, admin) = match checked_form(&state, request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let path = format!("/api/v1/tokens/{}", encode(&fields.name));
    let answer = api(&state, &admin, &parts, Method::DELETE, &path).await;
    if !answer.status.is_success() {
        return html(
            answer.status,
            render::problem("Revocation failed", &answer.problem(), Some(&admin.csrf)),
        );
    }
    see_other(&format!("/?done=revoked&token={}", encode(&fields.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_and_end() {
        let sessions = Sessions::default();
        let (a, csrf_a) = sessions.create("t1");
        let short = Sessions { by_id: Mutex::default(), lifetime: Duration::ZERO };
        let (gone, _) = short.create("t1");
        assert!(short.get(&gone).is_none(), "a session ends after its lifetime");
        let (b, _) = sessions.create("t1");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(a, csrf_a);
        assert_eq!(sessions.get(&a).map(|session| session.token_id), Some("t1".to_owned()));
        sessions.remove(&a);
        assert!(sessions.get(&a).is_none());
        assert!(sessions.get("nope").is_none());
        assert!(sessions.get(&b).is_some());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; depproxy_session=abc ; b=2"));
        assert_eq!(cookie_value(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(&headers, "c"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(encode("lab/team x&y"), "lab%2Fteam%20x%26y");
        assert_eq!(encode("ok-1.2_~"), "ok-1.2_~");
    }
}
