//! The WeChat API router: token, send and template-list endpoints, behind the fault layer.
//!
//! Logging names the appid and path only: tokens and secrets never reach a log line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::config::{AppConfig, AppKind};
use crate::errcode::WxError;
use crate::messages::SendApi;
use crate::pusher;
use crate::state::AppState;
use crate::tokens::{IssuedToken, authenticate};

type Shared = State<Arc<AppState>>;
type Params = Query<HashMap<String, String>>;

/// Builds the router that imitates `https://api.weixin.qq.com`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/cgi-bin/token", get(token))
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/cgi-bin/message/template/send", post(template_send))
        .route("/cgi-bin/message/subscribe/send", post(subscribe_send))
        .route(
            "/cgi-bin/template/get_all_private_template",
            get(oa_templates),
        )
        .route("/wxaapi/newtmpl/gettemplate", get(mp_templates))
        .route_layer(middleware::from_fn_with_state(state.clone(), fault_layer))
        .with_state(state)
}

/// Counts the call, then applies faults: latency first, then outage, then errcode.
async fn fault_layer(State(state): Shared, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    tracing::debug!(path = %path, "api call");
    let decision = {
        let mut inner = state.lock();
        *inner.counters.api_calls.entry(path.clone()).or_default() += 1;
        inner.faults.decide(&path)
    };
    if decision.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.latency_ms)).await;
    }
    if let Some(status) = decision.http_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        tracing::info!(path = %path, status = status.as_u16(), "injected http outage");
        return (status, format!("{status}: injected outage\n")).into_response();
    }
    if let Some(err) = decision.error {
        tracing::info!(path = %path, errcode = err.errcode, "injected errcode");
        return err.into_response();
    }
    next.run(req).await
}

fn token_answer(state: &AppState, appid: &str, issued: IssuedToken) -> Response {
    let mut inner = state.lock();
    *inner
        .counters
        .token_fetches
        .entry(appid.to_string())
        .or_default() += 1;
    if issued.is_new {
        *inner
            .counters
            .new_tokens_issued
            .entry(appid.to_string())
            .or_default() += 1;
        tracing::info!(appid, "issued a new access token");
    }
    Json(json!({"access_token": issued.access_token, "expires_in": issued.expires_in}))
        .into_response()
}

async fn token(State(state): Shared, Query(q): Params) -> Result<Response, WxError> {
    let get = |k: &str| q.get(k).map(String::as_str);
    let app = authenticate(
        &state.config,
        get("grant_type"),
        get("appid"),
        get("secret"),
    )?;
    let now = state.clock.now_ms();
    let issued = state
        .lock()
        .tokens
        .fetch_plain(&app.appid, &state.config.token, now)?;
    Ok(token_answer(&state, &app.appid, issued))
}

async fn stable_token(State(state): Shared, body: Bytes) -> Result<Response, WxError> {
    let body: Value = serde_json::from_slice(&body).map_err(|_| WxError::code(47001))?;
    let get = |k: &str| body.get(k).and_then(Value::as_str);
    let app = authenticate(
        &state.config,
        get("grant_type"),
        get("appid"),
        get("secret"),
    )?;
    let force = match body.get("force_refresh") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(WxError::code(47001)),
    };
    let now = state.clock.now_ms();
    let issued = state
        .lock()
        .tokens
        .fetch_stable(&app.appid, force, &state.config.token, now)?;
    Ok(token_answer(&state, &app.appid, issued))
}

/// Resolves the `access_token` query parameter to the app that owns it.
fn authorized<'a>(
    state: &'a AppState,
    q: &HashMap<String, String>,
) -> Result<&'a AppConfig, WxError> {
    let now = state.clock.now_ms();
    let inner = state.lock();
    let appid = inner
        .tokens
        .check(q.get("access_token").map(String::as_str), now)?;
    state.config.app(appid).ok_or(WxError::code(40001))
}

fn send(
    state: &Arc<AppState>,
    api: SendApi,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response, WxError> {
    let app = authorized(state, q)?;
    let now = state.clock.now_ms();
    let (msgid, recorded) = {
        let mut inner = state.lock();
        let (msgid, recorded) =
            inner
                .messages
                .send(api, app, body, now, state.config.dedup_window_secs)?;
        if recorded {
            inner.counters.messages_sent += 1;
        }
        (msgid, recorded)
    };
    tracing::debug!(appid = %app.appid, msgid, recorded, "message accepted");
    if recorded && app.callback.is_some() {
        // WeChat's receipt follows a message it took, once (a repeat of a
        // client_msg_id is answered with the first msgid, not sent again).
        let body: Value = serde_json::from_slice(body).unwrap_or_default();
        let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
        pusher::after_send(
            state,
            pusher::Sent {
                api,
                appid: app.appid.clone(),
                openid: field("touser").to_string(),
                template_id: field("template_id").to_string(),
                msgid,
            },
        );
    }
    Ok(Json(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid})).into_response())
}

async fn template_send(
    State(state): Shared,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, WxError> {
    send(&state, SendApi::Template, &q, &body)
}

async fn subscribe_send(
    State(state): Shared,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, WxError> {
    send(&state, SendApi::Subscribe, &q, &body)
}

async fn oa_templates(State(state): Shared, Query(q): Params) -> Result<Response, WxError> {
    let app = authorized(&state, &q)?;
    if app.kind != AppKind::OfficialAccount {
        return Err(WxError::code(48001));
    }
    let list: Vec<Value> = app
        .templates
        .iter()
        .map(|t| {
            json!({
                "template_id": t.template_id,
                "title": t.title,
                "primary_industry": "IT科技",
                "deputy_industry": "互联网|电子商务",
                "content": t.content,
                "example": t.example,
            })
        })
        .collect();
    Ok(Json(json!({"template_list": list})).into_response())
}

async fn mp_templates(State(state): Shared, Query(q): Params) -> Result<Response, WxError> {
    let app = authorized(&state, &q)?;
    if app.kind != AppKind::MiniProgram {
        return Err(WxError::code(48001));
    }
    let list: Vec<Value> = app
        .templates
        .iter()
        .map(|t| {
            json!({
                "priTmplId": t.template_id,
                "title": t.title,
                "content": t.content,
                "example": t.example,
                "type": t.template_type,
            })
        })
        .collect();
    Ok(Json(json!({"errcode": 0, "errmsg": "ok", "data": list})).into_response())
}
