//! `GET` and `POST /wechat/callback/{app_id}`: the one part of wxpush that
//! WeChat calls from the internet.
//!
//! Order matters: the app is looked up and the URL's `signature` (the
//! app's `Token`, `timestamp`, `nonce`) checked before the body is read
//! past its size limit or parsed at all; in safe mode the `Encrypt`
//! value's `msg_signature` is checked before it is decrypted, and the
//! appid inside must be the app's; an app with an `EncodingAESKey` takes
//! safe (or compatible) mode only, since a plaintext body is not signed.
//! A push is answered `success` only after
//! it was handed on ([`crate::handoff`]), within [`ANSWER_WITHIN`]; WeChat
//! sends it again otherwise. Every refusal is counted by reason; none is
//! logged with a token, a key or the body.

use crate::config::AppKeys;
use crate::handoff::{HandedOn, PushSink};
use crate::metrics::{CallbackMetrics, Outcome};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use wxpush_wechat::push::Push;
use wxpush_wechat::push::crypto::signature_matches;

/// WeChat waits 5 s for an answer; leave it room.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(4_500);

/// What the handlers share.
pub struct Endpoint {
    pub apps: HashMap<String, AppKeys>,
    pub sink: Arc<dyn PushSink>,
    pub max_body_bytes: usize,
}

/// The query WeChat signs.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Signed {
    signature: String,
    timestamp: String,
    nonce: String,
    echostr: String,
    encrypt_type: String,
    msg_signature: String,
}

impl Endpoint {
    /// The routes, for the public listener.
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/wechat/callback/{app_id}", get(verify).post(receive))
            .with_state(self)
    }

    /// The app, and the URL's signature checked; else the refusal.
    fn signed(&self, app_id: &str, q: &Signed) -> Result<&AppKeys, Outcome> {
        let keys = self.apps.get(app_id).ok_or(Outcome::UnknownApp)?;
        let parts = [keys.token.expose(), q.timestamp.as_str(), q.nonce.as_str()];
        if !signature_matches(&q.signature, &parts) {
            return Err(Outcome::BadSignature);
        }
        Ok(keys)
    }
}

/// URL verification: the `echostr` back when the signature holds.
async fn verify(
    State(ep): State<Arc<Endpoint>>,
    Path(app_id): Path<String>,
    Query(q): Query<Signed>,
) -> Response {
    match ep.signed(&app_id, &q) {
        Ok(_) => {
            CallbackMetrics::global().count(&app_id, Outcome::Verified);
            q.echostr.into_response()
        }
        Err(refused) => refuse(&app_id, refused),
    }
}

/// A push: checked, opened, read, handed on, answered; in a server span
/// its readers continue (WeChat sends no trace context: a trace starts
/// here).
async fn receive(
    State(ep): State<Arc<Endpoint>>,
    Path(app_id): Path<String>,
    Query(q): Query<Signed>,
    body: Body,
) -> Response {
    let span = tracing::info_span!(
        "callback.receive",
        otel.name = "POST /wechat/callback/{app_id}",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/wechat/callback/{app_id}",
        // The caller's text: recorded once the app is known.
        wxpush.app_id = tracing::field::Empty,
    );
    receive_in_span(ep, app_id, q, body).instrument(span).await
}

async fn receive_in_span(ep: Arc<Endpoint>, app_id: String, q: Signed, body: Body) -> Response {
    let keys = match ep.signed(&app_id, &q) {
        Ok(keys) => keys,
        Err(refused) => return refuse(&app_id, refused),
    };
    let Ok(body) = axum::body::to_bytes(body, ep.max_body_bytes).await else {
        return refuse(&app_id, Outcome::TooLarge);
    };
    let message = match open(keys, &app_id, &q, &body) {
        Ok(message) => message,
        Err(refused) => return refuse(&app_id, refused),
    };
    let Ok(push) = Push::parse(&message) else {
        return refuse(&app_id, Outcome::Unreadable);
    };
    tracing::Span::current().record("wxpush.app_id", app_id.as_str());
    let mut record = HandedOn::new(&app_id, &message, push, wxpush_events::callbacks::now_ms());
    record.carrier = wxpush_server::rpc::propagation::current_carrier();
    match tokio::time::timeout(ANSWER_WITHIN, ep.sink.hand_on(&record)).await {
        Ok(Ok(first)) => {
            let outcome = if first {
                Outcome::Accepted
            } else {
                Outcome::Repeated
            };
            CallbackMetrics::global().count(&app_id, outcome);
            "success".into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(app_id = %app_id, error = %e, "a push could not be handed on; WeChat will send it again");
            refuse(&app_id, Outcome::HandoffFailed)
        }
        Err(_) => {
            tracing::warn!(app_id = %app_id, "handing a push on took too long; WeChat will send it again");
            refuse(&app_id, Outcome::HandoffFailed)
        }
    }
}

/// The push's message: the body itself in plaintext mode, or its
/// `Encrypt` value opened in safe mode (`encrypt_type=aes`).
fn open(keys: &AppKeys, app_id: &str, q: &Signed, body: &Bytes) -> Result<Vec<u8>, Outcome> {
    let Some(aes) = keys.aes.as_ref() else {
        // A plaintext app: the URL's signature is all WeChat gives.
        return if q.encrypt_type.is_empty() {
            Ok(body.to_vec())
        } else {
            Err(Outcome::Undecryptable)
        };
    };
    // An app with a key takes only what is signed with the body (safe and
    // compatible modes): a plaintext body is not covered by the URL's
    // signature, so one leaked URL could carry any body.
    if q.encrypt_type != "aes" {
        return Err(Outcome::BadSignature);
    }
    let encrypt = Push::encrypted(body).map_err(|_| Outcome::Unreadable)?;
    let parts = [
        keys.token.expose(),
        q.timestamp.as_str(),
        q.nonce.as_str(),
        encrypt.as_str(),
    ];
    if !signature_matches(&q.msg_signature, &parts) {
        return Err(Outcome::BadSignature);
    }
    aes.decrypt(&encrypt, app_id).map_err(|e| match e {
        wxpush_wechat::push::crypto::CryptoError::OtherApp => Outcome::OtherApp,
        _ => Outcome::Undecryptable,
    })
}

/// The answer to a refused call, counted.
fn refuse(app_id: &str, outcome: Outcome) -> Response {
    // An unknown app id is the caller's text: counted without it.
    let label = if outcome == Outcome::UnknownApp {
        ""
    } else {
        app_id
    };
    CallbackMetrics::global().count(label, outcome);
    (outcome.status(), outcome.reason()).into_response()
}

impl Outcome {
    /// The HTTP status of a refusal.
    fn status(self) -> StatusCode {
        match self {
            Outcome::UnknownApp => StatusCode::NOT_FOUND,
            Outcome::BadSignature => StatusCode::FORBIDDEN,
            Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::Undecryptable | Outcome::OtherApp | Outcome::Unreadable => {
                StatusCode::BAD_REQUEST
            }
            Outcome::HandoffFailed => StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Verified | Outcome::Accepted | Outcome::Repeated => StatusCode::OK,
        }
    }
}
