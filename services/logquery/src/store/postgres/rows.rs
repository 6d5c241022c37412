//! Records to rows and back. A record is one `log_records` row, its
//! attempts a JSON array in the row (`history`), written as column arrays
//! (`unnest`), so a whole batch is one statement.

use crate::error::StoreError;
use crate::filter::micros;
use crate::record::StoredRecord;
use tokio_postgres::Row;
use wxpush_postgres::Micros;
use wxpush_proto::Timestamp;
use wxpush_proto::v1::{Attempt, LogRecord};

/// The select list that reads whole records as `r`.
pub const SELECT_RECORDS: &str = "SELECT r.accepted_at, r.message_id, r.trace_id, r.app_id, r.openid, \
    r.template_key, r.template_id, r.kind, r.status, r.errcode, r.errmsg, r.wechat_msgid, \
    r.attempts, r.latency_ms, r.sent_at, r.updated_at, r.data_json, r.event_ids, r.history::text, \
    r.caller FROM log_records r";

/// One attempt as `history` holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAttempt {
    attempt: u32,
    status: i32,
    errcode: i64,
    errmsg: String,
    wechat_msgid: String,
    latency_ms: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    occurred_us: Option<i64>,
}

fn history_json(history: &[Attempt]) -> String {
    let stored: Vec<StoredAttempt> = history
        .iter()
        .map(|a| StoredAttempt {
            attempt: a.attempt,
            status: a.status,
            errcode: a.errcode,
            errmsg: a.errmsg.clone(),
            wechat_msgid: a.wechat_msgid.clone(),
            latency_ms: a.latency_ms,
            occurred_us: a.occurred_at.as_ref().map(|t| micros(Some(t))),
        })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".into())
}

fn history(json: &str) -> Result<Vec<Attempt>, serde_json::Error> {
    let stored: Vec<StoredAttempt> = serde_json::from_str(json)?;
    Ok(stored
        .into_iter()
        .map(|a| Attempt {
            attempt: a.attempt,
            status: a.status,
            errcode: a.errcode,
            errmsg: a.errmsg,
            wechat_msgid: a.wechat_msgid,
            latency_ms: a.latency_ms,
            occurred_at: a.occurred_us.map(wxpush_proto::timestamp_from_micros),
        })
        .collect())
}

fn timestamp(m: Micros) -> Timestamp {
    wxpush_proto::timestamp_from_micros(m.0)
}

fn at(t: Option<&Timestamp>) -> Option<Micros> {
    t.map(|t| Micros(micros(Some(t))))
}

/// A record read with [`SELECT_RECORDS`].
pub fn stored_record(row: &Row) -> Result<StoredRecord, StoreError> {
    let message_id: String = row.try_get(1)?;
    let history = history(row.try_get(18)?).map_err(|e| StoreError::Corrupt {
        key: message_id.clone(),
        reason: format!("history: {e}"),
    })?;
    let record = LogRecord {
        accepted_at: Some(timestamp(row.try_get(0)?)),
        message_id,
        trace_id: row.try_get(2)?,
        app_id: row.try_get(3)?,
        openid: row.try_get(4)?,
        template_key: row.try_get(5)?,
        template_id: row.try_get(6)?,
        kind: row.try_get(7)?,
        status: row.try_get(8)?,
        errcode: row.try_get(9)?,
        errmsg: row.try_get(10)?,
        wechat_msgid: row.try_get(11)?,
        attempts: row.try_get::<_, i32>(12)? as u32,
        latency_ms: row.try_get::<_, i32>(13)? as u32,
        sent_at: row.try_get::<_, Option<Micros>>(14)?.map(timestamp),
        updated_at: row.try_get::<_, Option<Micros>>(15)?.map(timestamp),
        data_json: row.try_get(16)?,
        history,
        caller: row.try_get(19)?,
    };
    Ok(StoredRecord {
        record,
        event_ids: row.try_get(17)?,
    })
}

/// Upserts records given as column arrays.
pub const UPSERT_RECORDS: &str = "INSERT INTO log_records (accepted_at, message_id, trace_id, app_id, \
    openid, template_key, template_id, kind, status, errcode, errmsg, wechat_msgid, attempts, \
    latency_ms, sent_at, updated_at, data_json, event_ids, history, caller) \
    SELECT a, m, tr, ap, o, tk, ti, k, s, e, em, w, n, l, sa, ua, d, \
    ARRAY(SELECT jsonb_array_elements_text(ev::jsonb)), h::jsonb, c FROM unnest(\
    $1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
    $8::int[], $9::int[], $10::bigint[], $11::text[], $12::text[], $13::int[], $14::int[], \
    $15::timestamptz[], $16::timestamptz[], $17::text[], $18::text[], $19::text[], $20::text[]) \
    AS t(a, m, tr, ap, o, tk, ti, k, s, e, em, w, n, l, sa, ua, d, ev, h, c) \
    ON CONFLICT (accepted_at, message_id) DO UPDATE SET \
    status = EXCLUDED.status, errcode = EXCLUDED.errcode, errmsg = EXCLUDED.errmsg, \
    wechat_msgid = EXCLUDED.wechat_msgid, attempts = EXCLUDED.attempts, \
    latency_ms = EXCLUDED.latency_ms, sent_at = EXCLUDED.sent_at, updated_at = EXCLUDED.updated_at, \
    data_json = EXCLUDED.data_json, event_ids = EXCLUDED.event_ids, history = EXCLUDED.history, \
    caller = EXCLUDED.caller";

/// Records as the column arrays of [`UPSERT_RECORDS`].
#[derive(Default)]
pub struct RecordColumns {
    accepted_at: Vec<Micros>,
    message_id: Vec<String>,
    trace_id: Vec<String>,
    app_id: Vec<String>,
    openid: Vec<String>,
    template_key: Vec<String>,
    template_id: Vec<String>,
    kind: Vec<i32>,
    status: Vec<i32>,
    errcode: Vec<i64>,
    errmsg: Vec<String>,
    wechat_msgid: Vec<String>,
    attempts: Vec<i32>,
    latency_ms: Vec<i32>,
    sent_at: Vec<Option<Micros>>,
    updated_at: Vec<Option<Micros>>,
    data_json: Vec<String>,
    /// Each record's ids as a JSON array: an array of arrays of different
    /// lengths is not a PostgreSQL type, so they travel as text.
    event_ids: Vec<String>,
    /// Each record's attempts as a JSON array (the `history` column).
    history: Vec<String>,
    caller: Vec<String>,
}

impl RecordColumns {
    pub fn push(&mut self, s: &StoredRecord) {
        let r = &s.record;
        self.accepted_at
            .push(Micros(micros(r.accepted_at.as_ref())));
        self.message_id.push(r.message_id.clone());
        self.trace_id.push(r.trace_id.clone());
        self.app_id.push(r.app_id.clone());
        self.openid.push(r.openid.clone());
        self.template_key.push(r.template_key.clone());
        self.template_id.push(r.template_id.clone());
        self.kind.push(r.kind);
        self.status.push(r.status);
        self.errcode.push(r.errcode);
        self.errmsg.push(r.errmsg.clone());
        self.wechat_msgid.push(r.wechat_msgid.clone());
        self.attempts.push(r.attempts as i32);
        self.latency_ms.push(r.latency_ms as i32);
        self.sent_at.push(at(r.sent_at.as_ref()));
        self.updated_at.push(at(r.updated_at.as_ref()));
        self.data_json.push(r.data_json.clone());
        self.event_ids
            .push(serde_json::to_string(&s.event_ids).unwrap_or_else(|_| "[]".into()));
        self.history.push(history_json(&r.history));
        self.caller.push(r.caller.clone());
    }

    pub fn is_empty(&self) -> bool {
        self.message_id.is_empty()
    }

    pub fn params(&self) -> [&(dyn postgres_types::ToSql + Sync); 20] {
        [
            &self.accepted_at,
            &self.message_id,
            &self.trace_id,
            &self.app_id,
            &self.openid,
            &self.template_key,
            &self.template_id,
            &self.kind,
            &self.status,
            &self.errcode,
            &self.errmsg,
            &self.wechat_msgid,
            &self.attempts,
            &self.latency_ms,
            &self.sent_at,
            &self.updated_at,
            &self.data_json,
            &self.event_ids,
            &self.history,
            &self.caller,
        ]
    }
}
