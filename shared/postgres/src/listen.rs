//! `LISTEN` on a channel, for as long as the process runs: one connection
//! of its own (a pooled one could not wait), redialled with backoff when it
//! drops. A notification's payload goes to `on_notice(Some(payload))`;
//! every (re)connection calls `on_notice(None)` first, because whatever was
//! notified while it was down is lost: the listener must assume anything
//! may have changed.

use futures_util::StreamExt;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

/// Longest pause between redials.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Listens on `channel` until `stop` completes.
pub async fn listen(
    url: String,
    channel: &'static str,
    on_notice: impl Fn(Option<&str>) + Send + Sync + 'static,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = session(&url, channel, &on_notice, &mut backoff);
        tokio::select! {
            _ = &mut stop => return,
            reason = session => {
                tracing::warn!(channel, %reason, "PostgreSQL notifications lost; listening again");
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: returns why it ended.
async fn session(
    url: &str,
    channel: &str,
    on_notice: &(impl Fn(Option<&str>) + Send + Sync),
    backoff: &mut Duration,
) -> String {
    let mut config: tokio_postgres::Config = match url.parse() {
        Ok(c) => c,
        Err(e) => return crate::describe(&e),
    };
    config
        .application_name("wxpush-listen")
        .connect_timeout(crate::CONNECT_TIMEOUT)
        .keepalives_idle(Duration::from_secs(30));
    let (client, mut connection) = match config.connect(tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(e) => return crate::describe(&e),
    };
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx)).boxed();
    // The connection is driven by polling its messages; LISTEN needs that
    // to run meanwhile.
    let sql = format!("LISTEN {channel}");
    {
        let listening = client.batch_execute(&sql);
        tokio::pin!(listening);
        loop {
            tokio::select! {
                done = &mut listening => match done {
                    Ok(()) => break,
                    Err(e) => return crate::describe(&e),
                },
                m = messages.next() => match m {
                    Some(Err(e)) => return crate::describe(&e),
                    None => return "the connection closed".into(),
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    *backoff = Duration::from_millis(100);
    on_notice(None);
    while let Some(m) = messages.next().await {
        match m {
            Ok(AsyncMessage::Notification(n)) if n.channel() == channel => {
                on_notice(Some(n.payload()))
            }
            Ok(_) => {}
            Err(e) => return crate::describe(&e),
        }
    }
    // `client` lives until here: dropping it would end the session.
    drop(client);
    "the connection closed".into()
}
