//! PostgreSQL on the production topology (four `wxpush serve` processes;
//! template, delivery and logquery on `backend.kind: postgres`, the hot
//! path on Redis): `wxpush migrate`, a template change reaching sends at
//! once, and the fault suite's PostgreSQL fault (killed while messages are
//! sent, then back: every record there, no attempt twice).

mod faults;
mod topology;

use faults::*;
use std::process::Command;
use std::time::{Duration, Instant};
use topology::Topology;
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::*;
use wxpush_testkit::PostgresServer;

fn migrate(url: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wxpush"))
        .args(["migrate", "--postgres-url", url])
        .env_remove("WXPUSH_POSTGRES_URL")
        .output()
        .expect("wxpush migrate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn wxpush_migrate_applies_the_schema_once_and_refuses_a_bad_url() {
    let pg = PostgresServer::start();
    let (code, out, err) = migrate(&pg.url());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("logquery: applied [1, 2, 3]"), "{out}");
    assert!(out.contains("template: applied [1]"), "{out}");
    assert!(out.contains("delivery: applied [1]"), "{out}");
    assert_eq!(pg.psql("SELECT count(*) FROM delivery_statuses"), "12");
    let (code, out, _) = migrate(&pg.url());
    assert_eq!(
        (code, out.trim()),
        (
            0,
            "logquery: up to date\ntemplate: up to date\ndelivery: up to date"
        )
    );
    let (code, _, err) = migrate("postgres://u:s3cret@host:notaport/db");
    assert_eq!(code, 2, "a URL that does not parse is a usage error");
    assert!(
        !err.contains("s3cret"),
        "the password is never printed: {err}"
    );
    let mut gone = PostgresServer::start();
    let url = gone.url();
    gone.kill();
    let (code, _, err) = migrate(&url);
    assert_eq!(code, 4, "an unreachable database: {err}");
}

/// The status names in SQL are the enum's.
#[test]
fn delivery_statuses_table_matches_the_enum() {
    let pg = PostgresServer::start();
    assert_eq!(migrate(&pg.url()).0, 0);
    let rows = pg.psql(
        "SELECT string_agg(status || '=' || name, ',' ORDER BY status) FROM delivery_statuses",
    );
    let want: Vec<String> = (0..)
        .map_while(|n| DeliveryStatus::try_from(n).ok().map(|s| (n, s)))
        .map(|(n, s)| {
            format!(
                "{n}={}",
                s.as_str_name().trim_start_matches("DELIVERY_STATUS_")
            )
        })
        .collect();
    assert_eq!(rows, want.join(","));
}

/// Fault 12: PostgreSQL killed while messages are sent, and started again:
/// sending never depends on it, logquery answers UNAVAILABLE meanwhile,
/// and every record is there afterwards, each attempt once (the event
/// stream keeps what logquery could not write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faultsuite_postgres_killed_while_sending_loses_no_log_record() {
    let mut t = Topology::start_on_postgres().await;
    let mut d = DeliveryServiceClient::new(t.channel("delivery").await);
    let mut logs = LogQueryServiceClient::new(t.channel("logquery").await);
    let mut sent = send_sent(&mut d, 0, 10).await;
    assert_eq!(
        await_logged(&mut logs, &sent, Duration::from_secs(20)).await,
        (10, 0),
        "logged before the fault"
    );

    t.postgres.as_mut().unwrap().kill();
    sent.extend(send_sent(&mut d, 10, 20).await);
    let down = logs
        .query_logs(QueryLogsRequest::default())
        .await
        .expect_err("no log while PostgreSQL is down");
    assert_eq!(down.code(), tonic::Code::Unavailable, "{down:?}");

    t.postgres.as_mut().unwrap().restart();
    let back = Instant::now();
    let (present, doubled) = await_logged(&mut logs, &sent, Duration::from_secs(60)).await;
    println!(
        "fault table | PostgreSQL killed while 20 Sends went out (log on postgres) | records complete after {:.1} s back | missing {} | attempts doubled {doubled}",
        back.elapsed().as_secs_f64(),
        sent.len() - present
    );
    assert_eq!(
        present,
        sent.len(),
        "every record logged once PostgreSQL is back"
    );
    assert_eq!(doubled, 0, "no attempt recorded twice");
    let pg = t.postgres.as_ref().unwrap();
    assert_eq!(pg.psql("SELECT count(*) FROM log_records"), "30");
    assert_all_alive(&mut t);
}

/// Sends one order_shipped message; the carrier field WeChat received.
async fn carrier(t: &Topology, d: &mut Delivery, n: usize) -> String {
    let r = d
        .send(within(
            shipped_to("o_demo_follower", n),
            Duration::from_secs(5),
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(r.status, SENT);
    let list = wechat_sandbox::AdminClient::new(t.sandbox.admin_url())
        .messages(&wechat_sandbox::MessageQuery {
            client_msg_id: Some(r.message_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    list[0].body["data"]["thing3"]["value"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A changed template reaches the next sends at once: delivery keeps render
/// plans for 10 s on this backend, and drops its copy when the change is
/// announced (`LISTEN wxpush_templates`). Its history is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_change_reaches_sends_at_once_and_is_kept_in_history() {
    use wxpush_proto::v1::template_service_client::TemplateServiceClient;
    let t = Topology::start_on_postgres().await;
    let mut d = DeliveryServiceClient::new(t.channel("delivery").await);
    let mut templates = TemplateServiceClient::new(t.channel("template").await);
    assert_eq!(
        carrier(&t, &mut d, 0).await,
        "顺丰速运",
        "the plan is now cached"
    );
    let mut changed = template(&mut templates, "order_shipped").await;
    let version = changed.version;
    changed
        .fields
        .insert("thing3".into(), "{{carrier}}快递".into());
    templates
        .upsert_template(UpsertTemplateRequest {
            template: Some(changed),
            expected_version: version,
        })
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    let mut n = 1;
    let mut seen = carrier(&t, &mut d, n).await;
    while seen != "顺丰速运快递" && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        n += 1;
        seen = carrier(&t, &mut d, n).await;
    }
    assert_eq!(
        seen, "顺丰速运快递",
        "the change reached sends well within the 10 s a plan copy lives"
    );
    let history = templates
        .list_template_revisions(ListTemplateRevisionsRequest {
            key: "order_shipped".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .revisions;
    let versions: Vec<u64> = history
        .iter()
        .map(|r| r.template.as_ref().unwrap().version)
        .collect();
    assert_eq!(versions, [version + 1, version], "newest first, both kept");
}

/// Fault 13: PostgreSQL stalled (every process stopped: sockets open, no
/// answer) while messages are sent: sending never waits for it, a log
/// query is answered by its deadline, and once it goes on every record is
/// there, each attempt once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faultsuite_postgres_stalled_while_sending_loses_no_log_record() {
    let mut t = Topology::start_on_postgres().await;
    let mut d = DeliveryServiceClient::new(t.channel("delivery").await);
    let mut logs = LogQueryServiceClient::new(t.channel("logquery").await);
    t.postgres.as_ref().unwrap().pause();
    let sent = send_sent(&mut d, 0, 20).await;
    let asked = Instant::now();
    let stalled = logs
        .query_logs(within(QueryLogsRequest::default(), Duration::from_secs(2)))
        .await
        .expect_err("no log while PostgreSQL is stalled");
    let answered_in = asked.elapsed();
    assert!(
        matches!(
            stalled.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Unavailable
        ),
        "{stalled:?}"
    );
    t.postgres.as_ref().unwrap().resume();
    let back = Instant::now();
    let (present, doubled) = await_logged(&mut logs, &sent, Duration::from_secs(60)).await;
    println!(
        "fault table | PostgreSQL stalled (SIGSTOP) while 20 Sends went out (log on postgres) | query answered {:?} after {:.2} s | records complete after {:.1} s back | missing {} | attempts doubled {doubled}",
        stalled.code(),
        answered_in.as_secs_f64(),
        back.elapsed().as_secs_f64(),
        sent.len() - present
    );
    assert_eq!(
        present,
        sent.len(),
        "every record logged once PostgreSQL goes on"
    );
    assert_eq!(doubled, 0, "no attempt recorded twice");
    assert_all_alive(&mut t);
}

/// What must last lives in PostgreSQL: Redis restarted **empty** (no
/// persistence) under the production topology on `kind: postgres` loses
/// no template (one created through the API included), no log record and
/// no dead letter; sending resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faultsuite_redis_restarted_empty_loses_no_template_log_record_or_dead_letter() {
    use wxpush_proto::v1::template_service_client::TemplateServiceClient;
    let mut t = Topology::start_on_postgres().await;
    let mut d = DeliveryServiceClient::new(t.channel("delivery").await);
    let mut templates = TemplateServiceClient::new(t.channel("template").await);
    let mut logs = LogQueryServiceClient::new(t.channel("logquery").await);
    let sent = send_sent(&mut d, 0, 5).await;

    // A template made through the API, not in the templates file.
    let mut copy = template(&mut templates, "order_shipped").await;
    copy.key = "order_shipped_api".into();
    copy.version = 0;
    templates
        .upsert_template(UpsertTemplateRequest {
            template: Some(copy),
            expected_version: 0,
        })
        .await
        .unwrap();

    // A dead letter: WeChat refuses the message for good once.
    inject(
        &t,
        &[wechat_sandbox::Fault {
            path: TEMPLATE_SEND.into(),
            errcode: Some(40037),
            times: Some(1),
            ..Default::default()
        }],
    )
    .await;
    let dead_id = d
        .send_async(SendAsyncRequest::from(shipped_to("o_demo_follower", 50)))
        .await
        .unwrap()
        .into_inner()
        .message_id;
    let dead_letters = async |d: &mut Delivery| -> Vec<String> {
        d.list_dead_letters(ListDeadLettersRequest::default())
            .await
            .map(|r| r.into_inner().dead_letters)
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.message_id)
            .collect()
    };
    let until = Instant::now() + Duration::from_secs(10);
    while !dead_letters(&mut d).await.contains(&dead_id) {
        assert!(Instant::now() < until, "no dead letter within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        await_logged(&mut logs, &sent, Duration::from_secs(10)).await,
        (sent.len(), 0)
    );

    t.redis.restart();
    let back = Instant::now();
    let mut n = 100;
    while send(&mut d, n).await != Ok(SENT) {
        n += 1;
        assert!(back.elapsed() < Duration::from_secs(30), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = template(&mut templates, "order_shipped_api").await;
    assert_eq!(kept.version, 1);
    assert!(
        dead_letters(&mut d).await.contains(&dead_id),
        "the dead letter is still there"
    );
    assert_eq!(
        logged(&mut logs, &sent).await,
        (sent.len(), 0),
        "every log record is still there"
    );
    println!(
        "fault table | Redis restarted empty, kind: postgres | serving again after {:.1} s | templates, log records and dead letters all kept",
        back.elapsed().as_secs_f64()
    );
    assert_all_alive(&mut t);
}
