//! A queued message as the Redis queue stores it: protobuf (a message
//! declared here, not part of the API), about half the bytes of the JSON
//! it replaced, with its maps in key order so the same message always
//! encodes the same (the delayed set keeps one member per message). An
//! entry written as JSON by an earlier version still reads.

use super::QueuedMessage;
use prost::Message;
use std::collections::BTreeMap;

#[derive(Clone, PartialEq, prost::Message)]
struct Entry {
    #[prost(string, tag = "1")]
    message_id: String,
    /// Only when it is not the carrier's `traceparent` (it usually is).
    #[prost(string, tag = "2")]
    traceparent: String,
    #[prost(btree_map = "string, string", tag = "3")]
    carrier: BTreeMap<String, String>,
    #[prost(string, tag = "4")]
    app_id: String,
    #[prost(string, tag = "5")]
    template_key: String,
    #[prost(string, tag = "6")]
    openid: String,
    #[prost(btree_map = "string, string", tag = "7")]
    variables: BTreeMap<String, String>,
    #[prost(string, tag = "8")]
    url: String,
    #[prost(string, tag = "9")]
    page: String,
    /// The mini program jump target: appid, pagepath (both or neither).
    #[prost(string, optional, tag = "10")]
    miniprogram_appid: Option<String>,
    #[prost(string, tag = "11")]
    miniprogram_pagepath: String,
    #[prost(int64, tag = "12")]
    accepted_at_ms: i64,
    #[prost(uint32, tag = "13")]
    attempts: u32,
    #[prost(uint32, tag = "14")]
    failures: u32,
    #[prost(bool, tag = "15")]
    token_refreshed: bool,
    #[prost(int64, tag = "16")]
    last_errcode: i64,
    #[prost(string, tag = "17")]
    last_errmsg: String,
    #[prost(string, tag = "18")]
    caller: String,
}

/// The stored bytes of `m`.
pub fn encode(m: &QueuedMessage) -> Vec<u8> {
    let carried = m.carrier.get("traceparent") == Some(&m.traceparent);
    let (miniprogram_appid, miniprogram_pagepath) = match &m.miniprogram {
        Some((appid, page)) => (Some(appid.clone()), page.clone()),
        None => (None, String::new()),
    };
    Entry {
        message_id: m.message_id.clone(),
        traceparent: if carried {
            String::new()
        } else {
            m.traceparent.clone()
        },
        carrier: m
            .carrier
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        app_id: m.app_id.clone(),
        template_key: m.template_key.clone(),
        openid: m.openid.clone(),
        variables: m
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        url: m.url.clone(),
        page: m.page.clone(),
        miniprogram_appid,
        miniprogram_pagepath,
        accepted_at_ms: m.accepted_at_ms,
        attempts: m.attempts,
        failures: m.failures,
        token_refreshed: m.token_refreshed,
        last_errcode: m.last_errcode,
        last_errmsg: m.last_errmsg.clone(),
        caller: m.caller.clone(),
    }
    .encode_to_vec()
}

/// A message from its stored bytes: protobuf, or JSON from before.
pub fn decode(bytes: &[u8]) -> Result<QueuedMessage, String> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).map_err(|e| e.to_string());
    }
    let e = Entry::decode(bytes).map_err(|e| e.to_string())?;
    // Protobuf reads much as something: an entry that names no message is
    // not one.
    if e.message_id.is_empty() || e.template_key.is_empty() {
        return Err("not a queued message: no message_id or template_key".into());
    }
    let traceparent = if e.traceparent.is_empty() {
        e.carrier.get("traceparent").cloned().unwrap_or_default()
    } else {
        e.traceparent
    };
    Ok(QueuedMessage {
        message_id: e.message_id,
        traceparent,
        carrier: e.carrier.into_iter().collect(),
        app_id: e.app_id,
        template_key: e.template_key,
        openid: e.openid,
        variables: e.variables.into_iter().collect(),
        url: e.url,
        page: e.page,
        miniprogram: e.miniprogram_appid.map(|a| (a, e.miniprogram_pagepath)),
        accepted_at_ms: e.accepted_at_ms,
        attempts: e.attempts,
        failures: e.failures,
        token_refreshed: e.token_refreshed,
        last_errcode: e.last_errcode,
        last_errmsg: e.last_errmsg,
        caller: e.caller,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> QueuedMessage {
        QueuedMessage {
            message_id: "01a22e".into(),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            carrier: [
                (
                    "traceparent".to_string(),
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
                ),
                ("x-request-id".to_string(), "r-1".to_string()),
            ]
            .into(),
            app_id: "wx_demo_oa".into(),
            template_key: "order_shipped".into(),
            openid: "o_demo_follower".into(),
            variables: [("order_id".to_string(), "SF1".to_string())].into(),
            miniprogram: Some(("wxmini".into(), String::new())),
            accepted_at_ms: 1_764_000_000_000,
            attempts: 2,
            failures: 1,
            last_errcode: -1,
            last_errmsg: "system busy".into(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_smaller_than_json_and_reads_json_from_before() {
        let m = message();
        let bytes = encode(&m);
        assert_eq!(decode(&bytes).unwrap(), m);
        let json = serde_json::to_vec(&m).unwrap();
        assert!(
            bytes.len() * 10 < json.len() * 7,
            "{} bytes against JSON's {}",
            bytes.len(),
            json.len()
        );
        assert_eq!(
            decode(&json).unwrap(),
            m,
            "an entry from before the upgrade"
        );
        // A traceparent of its own (not the carrier's) is kept.
        let mut own = m.clone();
        own.traceparent = "00-11111111111111111111111111111111-2222222222222222-01".into();
        assert_eq!(decode(&encode(&own)).unwrap(), own);
        // The same message, the same bytes.
        assert_eq!(encode(&m.clone()), bytes);
        assert!(decode(b"\xff\xff garbage").is_err());
        assert!(decode(b"").is_err(), "an empty entry names no message");
        assert!(decode(b"garbage").is_err());
    }
}
