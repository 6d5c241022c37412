//! The HTTP client for the WeChat server API.

use crate::observe::{self, WechatMetrics};
use crate::redact::redact_url;
use crate::types::*;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};
use tracing::Instrument;
use wxpush_server::config::Secret;
use wxpush_server::rpc::propagation::inject_current;
use wxpush_server::trace_context::{TRACEPARENT, TraceContext};

/// Where WeChat is and how long to wait for it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// `https://api.weixin.qq.com` in production; the sandbox in dev and tests.
    pub base_url: String,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// TCP connect timeout.
    pub connect_timeout_ms: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.weixin.qq.com".into(),
            timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
        }
    }
}

/// A cheap-to-clone client; one per process is enough (it pools connections).
#[derive(Clone, Debug)]
pub struct WechatClient {
    http: reqwest::Client,
    base_url: String,
    metrics: WechatMetrics,
}

/// The envelope every WeChat answer shares; `errcode` absent means success.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

#[derive(Debug, Deserialize)]
struct SendReply {
    #[serde(default)]
    msgid: Option<serde_json::Value>,
}

impl From<SendReply> for SendReceipt {
    fn from(reply: SendReply) -> Self {
        let msgid = match reply.msgid {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) => s,
            _ => String::new(),
        };
        SendReceipt { msgid }
    }
}

/// A message send's answer body as [`WechatClient::send_message`] reads it
/// (the envelope's errcode, then the msgid); public for the fuzz target.
pub fn parse_send_answer(text: &str) -> Result<SendReceipt, WechatError> {
    decode::<SendReply>(text).map(Into::into)
}

#[derive(Deserialize)]
struct PrivateTemplates {
    #[serde(default)]
    template_list: Vec<PrivateTemplate>,
}

#[derive(Deserialize)]
struct SubscribeTemplates {
    #[serde(default)]
    data: Vec<SubscribeTemplate>,
}

impl WechatClient {
    /// Builds the client. TLS uses rustls with the ring provider (installed
    /// once per process) and the platform's roots, for the real API.
    pub fn new(settings: &ClientSettings) -> Result<Self, WechatError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .build()
            .map_err(|e| WechatError::Transport(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            metrics: WechatMetrics::global().clone(),
        })
    }

    /// The process's WeChat call metrics ([`WechatMetrics::global`]), to register on
    /// the admin port.
    pub fn metrics(&self) -> &WechatMetrics {
        &self.metrics
    }

    /// The base URL this client talks to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /cgi-bin/token`: a new token on every call (the previous one dies
    /// after a grace period). Prefer [`Self::stable_token`].
    pub async fn token(&self, appid: &str, secret: &Secret) -> Result<TokenGrant, WechatError> {
        let url = format!("{}/cgi-bin/token", self.base_url);
        let req = self.http.get(&url).query(&[
            ("grant_type", "client_credential"),
            ("appid", appid),
            ("secret", secret.expose()),
        ]);
        self.call("token", req, None).await
    }

    /// `POST /cgi-bin/stable_token`: the same token while it is valid; with
    /// `force_refresh` a new one at once (rate-limited by WeChat).
    pub async fn stable_token(
        &self,
        appid: &str,
        secret: &Secret,
        force_refresh: bool,
    ) -> Result<TokenGrant, WechatError> {
        let url = format!("{}/cgi-bin/stable_token", self.base_url);
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": appid,
            "secret": secret.expose(),
            "force_refresh": force_refresh,
        });
        let req = self.http.post(&url).json(&body);
        self.call("stable_token", req, None).await
    }

    /// Posts a rendered message body (JSON, without the token) to the
    /// template or subscribe send API.
    pub async fn send_message(
        &self,
        api: MessageApi,
        access_token: &str,
        body_json: &str,
        trace: Option<&TraceContext>,
    ) -> Result<SendReceipt, WechatError> {
        let url = format!("{}{}", self.base_url, api.path());
        let req = self
            .http
            .post(&url)
            .query(&[("access_token", access_token)])
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body_json.to_string());
        let reply: SendReply = self.call(api.name(), req, trace).await?;
        Ok(reply.into())
    }

    /// `GET /cgi-bin/template/get_all_private_template` (Official Accounts).
    pub async fn private_templates(
        &self,
        access_token: &str,
    ) -> Result<Vec<PrivateTemplate>, WechatError> {
        let url = format!(
            "{}/cgi-bin/template/get_all_private_template",
            self.base_url
        );
        let req = self.http.get(&url).query(&[("access_token", access_token)]);
        let list: PrivateTemplates = self.call("get_all_private_template", req, None).await?;
        Ok(list.template_list)
    }

    /// `GET /wxaapi/newtmpl/gettemplate` (Mini Programs).
    pub async fn subscribe_templates(
        &self,
        access_token: &str,
    ) -> Result<Vec<SubscribeTemplate>, WechatError> {
        let url = format!("{}/wxaapi/newtmpl/gettemplate", self.base_url);
        let req = self.http.get(&url).query(&[("access_token", access_token)]);
        let list: SubscribeTemplates = self.call("gettemplate", req, None).await?;
        Ok(list.data)
    }

    /// Sends a request and decodes WeChat's envelope: HTTP 200 with a
    /// non-zero errcode is [`WechatError::Api`]. Errors carry no URL, so no
    /// token or secret can leak through them. The call is a client span (see
    /// [`crate::observe`]) whose context goes out as `traceparent`; without an
    /// OpenTelemetry subscriber the caller's `trace` is sent instead.
    async fn call<T: DeserializeOwned>(
        &self,
        api: &'static str,
        req: reqwest::RequestBuilder,
        trace: Option<&TraceContext>,
    ) -> Result<T, WechatError> {
        let mut request = req.build().map_err(transport_error)?;
        let span = observe::span(api, request.method().as_str(), request.url());
        let injected = span.in_scope(|| inject_current(request.headers_mut()));
        if !injected
            && let Some(tc) = trace
            && let Ok(v) = reqwest::header::HeaderValue::from_str(&tc.header_value())
        {
            request.headers_mut().insert(TRACEPARENT, v);
        }
        let url = redact_url(request.url().as_str());
        let started = Instant::now();
        let (http_status, result) = self.execute(request).instrument(span.clone()).await;
        let outcome = result.and_then(|text| decode::<T>(&text));
        let elapsed = started.elapsed();
        observe::finish(
            &self.metrics,
            &span,
            api,
            http_status,
            outcome.as_ref().map(|_| ()),
            elapsed,
        );
        let elapsed_ms = elapsed.as_millis() as u64;
        match &outcome {
            Ok(_) => tracing::debug!(api, url = %url, elapsed_ms, "wechat call"),
            Err(e) => {
                tracing::debug!(api, url = %url, elapsed_ms, errcode = e.errcode(), error = %e, "wechat call failed")
            }
        }
        outcome
    }

    /// The HTTP status (when there was an answer) and the body of a 200.
    async fn execute(
        &self,
        request: reqwest::Request,
    ) -> (Option<u16>, Result<String, WechatError>) {
        let resp = match self.http.execute(request).await {
            Ok(resp) => resp,
            Err(e) => return (None, Err(transport_error(e))),
        };
        let status = resp.status();
        if !status.is_success() {
            return (
                Some(status.as_u16()),
                Err(WechatError::HttpStatus(status.as_u16())),
            );
        }
        (Some(status.as_u16()), read_bounded(resp).await)
    }
}

/// Largest WeChat answer read: its JSON answers are a few KB (a template
/// list a few tens); a server that keeps sending is cut off here.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// The body as text, refused past [`MAX_RESPONSE_BYTES`] without reading on.
async fn read_bounded(mut resp: reqwest::Response) -> Result<String, WechatError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(WechatError::Decode(format!(
                "answer larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|e| WechatError::Decode(e.to_string()))
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, WechatError> {
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| WechatError::Decode(e.to_string()))?;
    if envelope.errcode != 0 {
        return Err(WechatError::Api {
            errcode: envelope.errcode,
            errmsg: envelope.errmsg,
        });
    }
    serde_json::from_str(text).map_err(|e| WechatError::Decode(e.to_string()))
}

fn transport_error(e: reqwest::Error) -> WechatError {
    if e.is_timeout() {
        WechatError::Timeout
    } else {
        // `without_url` matters: reqwest's Display includes the URL, and the
        // URL carries the access token or the secret.
        WechatError::Transport(e.without_url().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_maps_errcode_to_api_error() {
        let err =
            decode::<SendReply>(r#"{"errcode":43004,"errmsg":"require subscribe"}"#).unwrap_err();
        assert_eq!(
            err,
            WechatError::Api {
                errcode: 43004,
                errmsg: "require subscribe".into()
            }
        );
        let ok: TokenGrant = decode(r#"{"access_token":"T","expires_in":7200}"#).unwrap();
        assert_eq!(ok.expires_in, 7200);
        assert_eq!(
            format!("{ok:?}"),
            r#"TokenGrant { access_token: "REDACTED", expires_in: 7200 }"#
        );
        assert!(matches!(
            decode::<SendReply>("<html>"),
            Err(WechatError::Decode(_))
        ));
    }

    #[test]
    fn transport_like_errors_record_as_minus_one() {
        assert_eq!(WechatError::HttpStatus(503).errcode(), -1);
        assert_eq!(WechatError::Timeout.errcode(), -1);
        assert_eq!(WechatError::Transport("refused".into()).errcode(), -1);
    }
}
