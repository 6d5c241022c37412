//! `wxpush send` and `wxpush logs [--follow]`: the README walkthrough
//! without grpcurl.

use crate::output;
use std::collections::HashMap;
use tonic::transport::Channel;
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;

/// Exit code when the RPC worked but the message was not delivered.
pub const EXIT_NOT_DELIVERED: i32 = 3;
/// Exit code when the RPC itself failed (bad input, server down).
pub const EXIT_RPC_ERROR: i32 = 2;

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
            format!("unknown status {name:?} (SENT, FAILED, QUEUED, DEFERRED, RETRYING, DEAD, ...)")
        })
}

/// The channel to `addr`, or returns the RPC-error exit code from the
/// calling command after saying why not.
macro_rules! connect_or_return {
    ($addr:expr) => {
        match connect($addr).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return EXIT_RPC_ERROR;
            }
        }
    };
}

async fn connect(addr: &str) -> Result<Channel, String> {
    Channel::from_shared(addr.to_string())
        .map_err(|e| format!("bad --addr {addr:?}: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}

/// Sends one message; prints the result; returns the exit code.
pub async fn send(addr: &str, req: SendRequest, json: bool) -> i32 {
    let channel = connect_or_return!(addr);
    match DeliveryServiceClient::new(channel).send(req).await {
        Ok(resp) => {
            let r = resp.into_inner();
            if json {
                println!("{}", output::result_json(&r));
            } else {
                println!("{}", output::result_text(&r));
            }
            if r.status == DeliveryStatus::Sent as i32 {
                0
            } else {
                EXIT_NOT_DELIVERED
            }
        }
        Err(status) => {
            eprintln!("{}", output::status_text(&status));
            EXIT_RPC_ERROR
        }
    }
}

/// Queries the delivery log; prints matching records; returns the exit code.
pub async fn logs(addr: &str, filter: LogFilter, limit: u32, json: bool) -> i32 {
    let channel = connect_or_return!(addr);
    match recent(channel, &filter, limit).await {
        Ok(records) => {
            if json {
                let records: Vec<_> = records.iter().map(output::record_json).collect();
                println!("{}", serde_json::Value::Array(records));
            } else if records.is_empty() {
                println!("no matching records");
            } else {
                for r in &records {
                    println!("{}", output::record_line(r));
                }
            }
            0
        }
        Err(status) => {
            eprintln!("{}", output::status_text(&status));
            EXIT_RPC_ERROR
        }
    }
}

/// The newest `limit` records matching `filter`, newest first.
async fn recent(
    channel: Channel,
    filter: &LogFilter,
    limit: u32,
) -> Result<Vec<LogRecord>, tonic::Status> {
    let req = QueryLogsRequest {
        filter: Some(filter.clone()),
        page_size: limit,
        page_token: String::new(),
    };
    let page = LogQueryServiceClient::new(channel).query_logs(req).await?;
    Ok(page.into_inner().records)
}

/// `wxpush logs --follow`, like `tail -f`: the newest `limit` records, oldest
/// first, then every matching record as it is logged (a message again on
/// each new attempt), one per line (`--json`: one JSON object per line),
/// until the server ends the stream (exit 0) or fails (exit 2).
pub async fn follow(addr: &str, filter: LogFilter, limit: u32, json: bool) -> i32 {
    let channel = connect_or_return!(addr);
    let print = |r: &LogRecord| {
        if json {
            println!("{}", output::record_json(r));
        } else {
            println!("{}", output::record_line(r));
        }
    };
    // Subscribed first, so nothing logged meanwhile is missed; what the
    // page already showed is not shown twice.
    let request = TailLogsRequest {
        filter: Some(filter.clone()),
    };
    let result = async {
        let mut stream = LogQueryServiceClient::new(channel.clone())
            .tail_logs(request)
            .await?
            .into_inner();
        let shown = recent(channel, &filter, limit).await?;
        for r in shown.iter().rev() {
            print(r);
        }
        while let Some(r) = stream.message().await? {
            if !shown.contains(&r) {
                print(&r);
            }
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
pub async fn breaker(addr: &str, app_id: Option<String>, json: bool) -> i32 {
    let channel = connect_or_return!(addr);
    let request = GetBreakerStateRequest {
        app_id: app_id.unwrap_or_default(),
    };
    match DeliveryServiceClient::new(channel)
        .get_breaker_state(request)
        .await
    {
        Ok(resp) => {
            let apps = resp.into_inner().apps;
            if json {
                let list: Vec<_> = apps.iter().map(output::breaker_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if apps.is_empty() {
                println!("no app has sent anything yet");
            } else {
                for a in &apps {
                    println!("{}", output::breaker_line(a));
                }
            }
            0
        }
        Err(status) => {
            eprintln!("{}", output::status_text(&status));
            EXIT_RPC_ERROR
        }
    }
}

/// Lists dead letters, or replays them (by ids, or all matching the
/// filter); returns the exit code.
pub async fn dlq(
    addr: &str,
    replay: bool,
    ids: Vec<String>,
    filter: DeadLetterFilter,
    limit: u32,
    json: bool,
) -> i32 {
    let channel = connect_or_return!(addr);
    let mut client = DeliveryServiceClient::new(channel);
    if replay {
        let request = ReplayDeadLettersRequest {
            message_ids: ids,
            filter: Some(filter),
        };
        return match client.replay_dead_letters(request).await {
            Ok(r) => {
                let r = r.into_inner();
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"replayed": r.replayed, "message_ids": r.message_ids})
                    );
                } else {
                    println!("replayed {} message(s)", r.replayed);
                }
                0
            }
            Err(status) => {
                eprintln!("{}", output::status_text(&status));
                EXIT_RPC_ERROR
            }
        };
    }
    let request = ListDeadLettersRequest {
        filter: Some(filter),
        page_size: limit,
        page_token: String::new(),
    };
    match client.list_dead_letters(request).await {
        Ok(r) => {
            let letters = r.into_inner().dead_letters;
            if json {
                let list: Vec<_> = letters.iter().map(output::dead_letter_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if letters.is_empty() {
                println!("no dead letters");
            } else {
                for d in &letters {
                    println!("{}", output::dead_letter_line(d));
                }
            }
            0
        }
        Err(status) => {
            eprintln!("{}", output::status_text(&status));
            EXIT_RPC_ERROR
        }
    }
}

/// Prints every app's token status, or one app's; returns the exit code.
pub async fn token_status(addr: &str, app_id: Option<String>, json: bool) -> i32 {
    let channel = connect_or_return!(addr);
    let mut client = TokenServiceClient::new(channel);
    let apps = match app_id {
        Some(app_id) => client
            .get_token_status(GetTokenStatusRequest { app_id })
            .await
            .map(|r| vec![r.into_inner()]),
        None => client
            .list_apps(ListAppsRequest {})
            .await
            .map(|r| r.into_inner().apps),
    };
    match apps {
        Ok(apps) => {
            if json {
                let list: Vec<_> = apps.iter().map(output::token_status_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for a in &apps {
                    println!("{}", output::token_status_line(a));
                }
            }
            0
        }
        Err(status) => {
            eprintln!("{}", output::status_text(&status));
            EXIT_RPC_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_and_statuses_parse_with_clear_errors() {
        let v = parse_vars(&["a=1".into(), "b=x=y".into()]).unwrap();
        assert_eq!(v["b"], "x=y");
        assert!(parse_vars(&["nokey".into()]).unwrap_err().contains("nokey"));
        assert_eq!(parse_status("sent").unwrap(), DeliveryStatus::Sent);
        assert!(parse_status("lost").is_err());
    }
}
