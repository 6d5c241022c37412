//! The admin HTTP API (its own listener): faults, recorded messages, counters, clock, tokens,
//! pushes made, subscription answers and reset, so tests and tools can steer and inspect the sandbox over HTTP.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::faults::{Fault, Outage};
use crate::listener::Mode;
use crate::messages::MessageQuery;
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// Builds the admin router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/admin/faults", post(set_fault).delete(clear_faults))
        .route("/admin/messages", get(messages))
        .route("/admin/counters", get(counters))
        .route("/admin/clock/advance", post(advance_clock))
        .route("/admin/tokens", get(tokens))
        .route("/admin/reset", post(reset))
        .route("/admin/pushes", get(pushes))
        .route("/admin/pushes/repeat", post(repeat_push))
        .route("/admin/subscriptions", post(subscription))
        .with_state(state)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

fn ok() -> Response {
    Json(json!({"ok": true})).into_response()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

async fn set_mode(state: &AppState, mode: Mode) -> Response {
    match state.api_control.set_mode(mode).await {
        Ok(()) => ok(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn set_fault(State(state): Shared, body: Bytes) -> Response {
    let fault: Fault = match parse(&body) {
        Ok(f) => f,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    if let Err(msg) = fault.validate() {
        return error(StatusCode::BAD_REQUEST, msg);
    }
    let refuse = fault.outage == Some(Outage::Refuse);
    tracing::info!(path = %fault.path, ?fault.outage, errcode = ?fault.errcode, "fault set");
    state.lock().faults.set(fault);
    if refuse {
        set_mode(&state, Mode::Refusing).await
    } else {
        ok()
    }
}

async fn clear_faults(State(state): Shared) -> Response {
    state.lock().faults.clear();
    tracing::info!("faults cleared");
    set_mode(&state, Mode::Serving).await
}

async fn messages(State(state): Shared, Query(q): Query<MessageQuery>) -> Response {
    Json(state.lock().messages.query(&q)).into_response()
}

async fn counters(State(state): Shared) -> Response {
    Json(state.lock().counters.clone()).into_response()
}

#[derive(Deserialize)]
struct Advance {
    secs: u64,
}

async fn advance_clock(State(state): Shared, body: Bytes) -> Response {
    match parse::<Advance>(&body) {
        Ok(a) => {
            state.clock.advance(a.secs);
            tracing::info!(secs = a.secs, "clock advanced");
            ok()
        }
        Err(msg) => error(StatusCode::BAD_REQUEST, msg),
    }
}

async fn tokens(State(state): Shared) -> Response {
    Json(state.lock().tokens.issued()).into_response()
}

async fn reset(State(state): Shared) -> Response {
    state.reset();
    tracing::info!("sandbox reset");
    set_mode(&state, Mode::Serving).await
}

async fn pushes(State(state): Shared) -> Response {
    let records: Vec<_> = state
        .lock()
        .pushes
        .iter()
        .map(|k| k.record.clone())
        .collect();
    Json(records).into_response()
}

#[derive(Deserialize)]
struct Repeat {
    id: u64,
}

/// The same request as push `id` once more (WeChat's retry).
async fn repeat_push(State(state): Shared, body: Bytes) -> Response {
    let id = match parse::<Repeat>(&body) {
        Ok(r) => r.id,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    match crate::pusher::repeat(&state, id).await {
        Some(record) => Json(record).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no push {id} kept")),
    }
}

/// A user's answer to a subscription pop-up (or a later change): the
/// consents change and the app's callback URL gets the event; answered
/// with the push's record once it was sent (`null` without a callback).
async fn subscription(State(state): Shared, body: Bytes) -> Response {
    let answer: crate::pusher::Answer = match parse(&body) {
        Ok(a) => a,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    match crate::pusher::answer(&state, answer).await {
        Ok(record) => Json(record).into_response(),
        Err(msg) => error(StatusCode::BAD_REQUEST, msg),
    }
}
