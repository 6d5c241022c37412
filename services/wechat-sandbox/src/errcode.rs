//! WeChat error answers: an errcode and errmsg in an HTTP 200 JSON body, as the real API does.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One WeChat error answer; rendered as HTTP 200 `{"errcode":N,"errmsg":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WxError {
    /// The WeChat errcode.
    pub errcode: i64,
    /// The human message.
    pub errmsg: String,
}

impl WxError {
    /// An error with an explicit message.
    pub fn new(errcode: i64, errmsg: impl Into<String>) -> Self {
        Self {
            errcode,
            errmsg: errmsg.into(),
        }
    }

    /// An error with WeChat's usual message for `errcode`.
    pub fn code(errcode: i64) -> Self {
        Self::new(errcode, default_errmsg(errcode))
    }
}

impl IntoResponse for WxError {
    fn into_response(self) -> Response {
        Json(json!({"errcode": self.errcode, "errmsg": self.errmsg})).into_response()
    }
}

/// WeChat's usual errmsg for an errcode (used when a fault or rule gives none).
pub fn default_errmsg(errcode: i64) -> &'static str {
    match errcode {
        0 => "ok",
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40036 => "invalid template_id size",
        40037 => "invalid template_id",
        40125 => "invalid appsecret",
        40164 => "invalid ip, not in whitelist",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41030 => "invalid page",
        42001 => "access_token expired",
        43004 => "require subscribe",
        43101 => "user refuse to accept the msg",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit, mustslower retry next minute",
        47001 => "data format error",
        47003 => "argument invalid!",
        48001 => "api unauthorized",
        50002 => "user limited",
        _ => "error",
    }
}
