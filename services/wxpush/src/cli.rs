//! The client commands (`wxpush send`, `logs`, `dlq`, `breaker`, `token`):
//! the README walkthrough without grpcurl. Each returns its exit code:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (for `send`: the message was SENT) |
//! | 2 | usage: a bad flag or value, nothing was asked of the server |
//! | 3 | `send` only: the call worked but the message was not delivered |
//! | 4 | the call failed: the server answered an error, or could not be reached in time |

use crate::output;
use std::collections::HashMap;
use std::time::Duration;
use tonic::transport::Channel;
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;

/// Exit code for a usage error (clap's own, too).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the RPC worked but the message was not delivered.
pub const EXIT_NOT_DELIVERED: i32 = 3;
/// Exit code when the RPC itself failed (an error answer, server down, timeout).
pub const EXIT_RPC_ERROR: i32 = 4;

/// Where and how a command talks to the suite.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: String,
    pub json: bool,
    /// Connecting, and each unary call (sent as its gRPC deadline).
    pub timeout: Duration,
    /// `--token`: sent on every call.
    pub token: Option<BearerToken>,
}

/// A bearer token from `--token` / `WXPUSH_TOKEN`, ready to send; never
/// printed.
#[derive(Clone)]
pub struct BearerToken(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(REDACTED)")
    }
}

/// `--token`: one line of visible ASCII (a JWT); the error never repeats it.
pub fn parse_token(s: &str) -> Result<BearerToken, String> {
    let token = s.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("not a bearer token (one word of visible ASCII, e.g. a JWT)".into());
    }
    let mut value: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
        format!("Bearer {token}")
            .parse()
            .map_err(|_| "not a bearer token".to_string())?;
    value.set_sensitive(true);
    Ok(BearerToken(value))
}

/// `--var key=value` into a map; the error names the bad argument.
pub fn parse_vars(vars: &[String]) -> Result<HashMap<String, String>, String> {
    vars.iter()
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--var {kv:?}: expected key=value"))
        })
        .collect()
}

/// Parses a status name (`sent`, `FAILED`) for `--status`.
pub fn parse_status(name: &str) -> Result<DeliveryStatus, String> {
    DeliveryStatus::from_str_name(&format!("DELIVERY_STATUS_{}", name.to_ascii_uppercase()))
        .ok_or_else(|| {
            format!(
                "unknown status {name:?} (SENT, DELIVERED, BLOCKED, UNDELIVERED, FAILED, QUEUED, DEFERRED, RETRYING, DEAD, ...)"
            )
        })
}

/// `--timeout`: `500ms`, `10s`, `2m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 500ms, 10s or 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("{s:?}: the unit must be ms, s or m")),
    };
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok(d)
}

/// The channel to the target, or returns the RPC-error exit code from the
/// calling command after saying why not.
macro_rules! connect_or_return {
    ($target:expr) => {
        match connect($target).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return EXIT_RPC_ERROR;
            }
        }
    };
}

async fn connect(t: &Target) -> Result<Channel, String> {
    Channel::from_shared(t.addr.clone())
        .map_err(|e| format!("bad --addr {:?}: {e}", t.addr))?
        .connect_timeout(t.timeout)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", t.addr))
}

/// A unary request carrying the target's deadline and credentials.
fn call<M>(t: &Target, message: M) -> tonic::Request<M> {
    let mut request = authorized(t, message);
    request.set_timeout(t.timeout);
    request
}

/// A request carrying the target's credentials (`--token`), if any.
fn authorized<M>(t: &Target, message: M) -> tonic::Request<M> {
    let mut request = tonic::Request::new(message);
    if let Some(BearerToken(value)) = &t.token {
        request
            .metadata_mut()
            .insert("authorization", value.clone());
    }
    request
}

/// Prints the answer (`--json`: the message in the protobuf JSON mapping;
/// else `text`'s lines) and returns 0, or prints the error and returns
/// [`EXIT_RPC_ERROR`].
fn answer<M: prost::Message + prost::Name>(
    t: &Target,
    result: Result<M, tonic::Status>,
    text: impl FnOnce(&M) -> String,
) -> i32 {
    match result {
        Ok(m) if t.json => {
            println!("{}", output::json(&m));
            0
        }
        Ok(m) => {
            println!("{}", text(&m));
            0
        }
        Err(status) => {
            eprintln!("{}", output::status_text(&status));
            EXIT_RPC_ERROR
        }
    }
}

/// Lines of `items`, or `empty` when there are none.
fn lines<T>(items: &[T], empty: &str, line: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return empty.to_string();
    }
    items.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// Sends one message; prints the result; returns the exit code.
pub async fn send(t: &Target, req: SendRequest) -> i32 {
    let channel = connect_or_return!(t);
    let result = DeliveryServiceClient::new(channel)
        .send(call(t, req))
        .await
        .map(tonic::Response::into_inner);
    let sent = matches!(&result, Ok(SendResponse { result: Some(r) }) if r.status == DeliveryStatus::Sent as i32);
    match answer(t, result, |r| {
        output::result_text(&r.result.clone().unwrap_or_default())
    }) {
        0 if !sent => EXIT_NOT_DELIVERED,
        code => code,
    }
}

/// Queries the delivery log; prints matching records; returns the exit code.
pub async fn logs(t: &Target, filter: LogFilter, limit: u32) -> i32 {
    let channel = connect_or_return!(t);
    let result = recent(t, channel, &filter, limit).await;
    answer(t, result, |page| {
        lines(&page.records, "no matching records", output::record_line)
    })
}

/// The newest `limit` records matching `filter`, newest first.
async fn recent(
    t: &Target,
    channel: Channel,
    filter: &LogFilter,
    limit: u32,
) -> Result<QueryLogsResponse, tonic::Status> {
    let req = QueryLogsRequest {
        filter: Some(filter.clone()),
        page_size: limit,
        page_token: String::new(),
    };
    let page = LogQueryServiceClient::new(channel)
        .query_logs(call(t, req))
        .await?;
    Ok(page.into_inner())
}

/// `wxpush logs --follow`, like `tail -f`: the newest `limit` records, oldest
/// first, then every matching record as it is logged (a message again on
/// each new attempt), one per line (`--json`: one `TailLogsResponse` per
/// line), and a notice wherever the server skipped records because we read
/// too slowly, until the server ends the stream (exit 0) or fails (exit 4).
pub async fn follow(t: &Target, filter: LogFilter, limit: u32) -> i32 {
    let channel = connect_or_return!(t);
    let print = |event: TailLogsResponse| match (&event.event, t.json) {
        (_, true) => println!("{}", output::json(&event)),
        (Some(tail_logs_response::Event::Record(r)), false) => {
            println!("{}", output::record_line(r))
        }
        (Some(tail_logs_response::Event::Gap(g)), false) => {
            eprintln!(
                "… {} records skipped (reading too slowly); QueryLogs has them",
                g.skipped
            )
        }
        (None, false) => {}
    };
    // Subscribed first, so nothing logged meanwhile is missed; what the
    // page already showed is not shown twice.
    let request = TailLogsRequest {
        filter: Some(filter.clone()),
    };
    let result = async {
        let mut stream = LogQueryServiceClient::new(channel.clone())
            .tail_logs(authorized(t, request))
            .await?
            .into_inner();
        let shown = recent(t, channel, &filter, limit).await?.records;
        for r in shown.iter().rev() {
            print(TailLogsResponse {
                event: Some(tail_logs_response::Event::Record(r.clone())),
            });
        }
        while let Some(event) = stream.message().await? {
            if let Some(tail_logs_response::Event::Record(r)) = &event.event
                && shown.contains(r)
            {
                continue;
            }
            print(event);
        }
        Ok::<(), tonic::Status>(())
    };
    match result.await {
        Ok(()) => {
            eprintln!("the server ended the stream");
            0
        }
        Err(status) => {
            eprintln!("{}", output::status_text(&status));
            EXIT_RPC_ERROR
        }
    }
}

/// Prints the circuit breaker state per app; returns the exit code.
pub async fn breaker(t: &Target, app_id: Option<String>) -> i32 {
    let channel = connect_or_return!(t);
    let request = GetBreakerStateRequest {
        app_id: app_id.unwrap_or_default(),
    };
    let result = DeliveryServiceClient::new(channel)
        .get_breaker_state(call(t, request))
        .await
        .map(tonic::Response::into_inner);
    answer(t, result, |r| {
        lines(
            &r.apps,
            "no app has sent anything yet",
            output::breaker_line,
        )
    })
}

/// Prints a Mini Program user's consent per subscribe template (what the
/// ledger learnt from WeChat's pop-up and change events); returns the exit
/// code.
pub async fn consent(t: &Target, app_id: String, openid: String) -> i32 {
    let channel = connect_or_return!(t);
    let request = GetConsentRequest { app_id, openid };
    let result = DeliveryServiceClient::new(channel)
        .get_consent(call(t, request))
        .await
        .map(tonic::Response::into_inner);
    answer(t, result, |r| {
        lines(
            &r.consents,
            "no subscription answer of this user has reached wxpush",
            output::consent_line,
        )
    })
}

/// What `wxpush dlq` does.
pub enum DlqAction {
    /// List the dead letters matching the filter.
    List,
    /// Replay these ids, or (none given) every dead letter matching the filter.
    Replay { ids: Vec<String> },
}

/// Lists dead letters, or replays them (by ids, or all matching the
/// filter); returns the exit code.
pub async fn dlq(t: &Target, action: DlqAction, filter: DeadLetterFilter, limit: u32) -> i32 {
    let channel = connect_or_return!(t);
    let mut client = DeliveryServiceClient::new(channel);
    if let DlqAction::Replay { ids } = action {
        let request = ReplayDeadLettersRequest {
            message_ids: ids,
            filter: Some(filter),
        };
        let result = client
            .replay_dead_letters(call(t, request))
            .await
            .map(tonic::Response::into_inner);
        return answer(t, result, |r| format!("replayed {} message(s)", r.replayed));
    }
    let request = ListDeadLettersRequest {
        filter: Some(filter),
        page_size: limit,
        page_token: String::new(),
    };
    let result = client
        .list_dead_letters(call(t, request))
        .await
        .map(tonic::Response::into_inner);
    answer(t, result, |r| {
        lines(&r.dead_letters, "no dead letters", output::dead_letter_line)
    })
}

/// Prints every app's token status, or one app's; returns the exit code.
pub async fn token_status(t: &Target, app_id: Option<String>) -> i32 {
    let channel = connect_or_return!(t);
    let mut client = TokenServiceClient::new(channel);
    let text = |apps: &[TokenStatus]| lines(apps, "no apps", output::token_status_line);
    match app_id {
        Some(app_id) => {
            let result = client
                .get_token_status(call(t, GetTokenStatusRequest { app_id }))
                .await
                .map(tonic::Response::into_inner);
            answer(t, result, |r| text(r.status.as_slice()))
        }
        None => {
            let result = all_apps(t, &mut client).await;
            answer(t, result, |r| text(&r.apps))
        }
    }
}

/// Every app, over as many `ListApps` pages as it takes.
async fn all_apps(
    t: &Target,
    client: &mut TokenServiceClient<Channel>,
) -> Result<ListAppsResponse, tonic::Status> {
    let mut all = ListAppsResponse::default();
    loop {
        let request = ListAppsRequest {
            page_size: 0,
            page_token: std::mem::take(&mut all.next_page_token),
        };
        let page = client.list_apps(call(t, request)).await?.into_inner();
        all.apps.extend(page.apps);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        all.next_page_token = page.next_page_token;
    }
}

/// The PostgreSQL schemas `wxpush migrate` applies, per component.
pub const MIGRATIONS: &[wxpush_postgres::Migrations] = &[
    wxpush_logquery::store::MIGRATIONS,
    wxpush_template::store::postgres::MIGRATIONS,
    wxpush_delivery::queue::MIGRATIONS,
];

/// Applies every component's PostgreSQL migrations; returns the exit code
/// (2 for a URL that does not parse, 4 when the database refuses).
pub async fn migrate(postgres_url: &str) -> i32 {
    let pool = match wxpush_postgres::open(postgres_url, "wxpush-migrate", 1) {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_USAGE;
        }
    };
    for m in MIGRATIONS {
        match m.apply(&pool).await {
            Ok(applied) if applied.is_empty() => println!("{}: up to date", m.component),
            Ok(applied) => println!("{}: applied {applied:?}", m.component),
            Err(e) => {
                eprintln!("{}: {e}", m.component);
                return EXIT_RPC_ERROR;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_statuses_and_durations_parse_with_clear_errors() {
        let v = parse_vars(&["a=1".into(), "b=x=y".into()]).unwrap();
        assert_eq!(v["b"], "x=y");
        assert!(parse_vars(&["nokey".into()]).unwrap_err().contains("nokey"));
        assert_eq!(parse_status("sent").unwrap(), DeliveryStatus::Sent);
        assert!(parse_status("lost").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").unwrap_err().contains("unit"));
    }
}
