//! Shared helpers: start a sandbox on loopback port 0 and talk to it with a plain reqwest client.

#![allow(dead_code)]

use reqwest::Client;
use serde_json::{Value, json};
use wechat_sandbox::{AdminClient, Sandbox, SandboxConfig, demo_config};

pub const OA: &str = "wx_demo_oa";
pub const OA_SECRET: &str = "demo-oa-secret-7f3a9c";
pub const OA_TEMPLATE: &str = "OA_ORDER_SHIPPED_k3J9";
pub const MP: &str = "wx_demo_mp";
pub const MP_SECRET: &str = "demo-mp-secret-2b8e41";
pub const MP_TEMPLATE: &str = "MP_ORDER_STATUS_p8Qx";

pub struct Env {
    pub sandbox: Sandbox,
    pub api: String,
    pub http: Client,
    pub admin: AdminClient,
}

pub async fn start() -> Env {
    start_with(demo_config()).await
}

pub async fn start_with(config: SandboxConfig) -> Env {
    let any = "127.0.0.1:0".parse().unwrap();
    let sandbox = Sandbox::start(config, any, any)
        .await
        .expect("sandbox starts");
    wechat_sandbox::install_crypto_provider();
    Env {
        api: sandbox.api_url(),
        admin: AdminClient::new(sandbox.admin_url()),
        http: Client::builder().build().unwrap(),
        sandbox,
    }
}

impl Env {
    pub async fn get(&self, path_and_query: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.api))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    pub async fn post(&self, path_and_query: &str, body: &Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path_and_query}", self.api))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// `/cgi-bin/token` answer.
    pub async fn fetch_token(&self, appid: &str, secret: &str) -> Value {
        self.get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
        ))
        .await
    }

    /// A fresh `/cgi-bin/token` token (panics on an error answer).
    pub async fn token(&self, appid: &str, secret: &str) -> String {
        let v = self.fetch_token(appid, secret).await;
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {v}"))
            .to_string()
    }

    /// `/cgi-bin/stable_token` answer.
    pub async fn stable(&self, appid: &str, secret: &str, force: bool) -> Value {
        let body = json!({"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force});
        self.post("/cgi-bin/stable_token", &body).await
    }

    pub async fn send_template(&self, token: &str, body: &Value) -> Value {
        self.post(
            &format!("/cgi-bin/message/template/send?access_token={token}"),
            body,
        )
        .await
    }

    pub async fn send_subscribe(&self, token: &str, body: &Value) -> Value {
        self.post(
            &format!("/cgi-bin/message/subscribe/send?access_token={token}"),
            body,
        )
        .await
    }
}

pub fn oa_message(openid: &str) -> Value {
    json!({
        "touser": openid,
        "template_id": OA_TEMPLATE,
        "url": "https://example.com/orders/1",
        "data": {
            "character_string1": {"value": "SF1234567"},
            "time2": {"value": "2026-11-22 10:00"},
            "thing3": {"value": "顺丰速运"}
        }
    })
}

pub fn mp_message(openid: &str, thing2: &str) -> Value {
    json!({
        "touser": openid,
        "template_id": MP_TEMPLATE,
        "page": "pages/order/detail?id=1",
        "miniprogram_state": "formal",
        "lang": "zh_CN",
        "data": {
            "character_string1": {"value": "SF1234567"},
            "thing2": {"value": thing2},
            "amount3": {"value": "¥99.00"}
        }
    })
}

pub fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(0)
}
