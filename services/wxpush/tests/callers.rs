//! Issue 17's table on the production topology with callers checked
//! ([`checked`]): every cell of callers × operations × apps is allowed or
//! refused as the grants say, with the right code, the expectation computed
//! from the same grant table the grants file is written from.

mod checked;
mod topology;

use checked::{APPS, Checked, GRANTS, key_of, send_to, start};
use tonic::{Code, Status};
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;

/// The oracle: what the grant table says a caller may do.
fn expected(caller: &str, op: &str, app: &str, key: &str) -> Code {
    let Some(g) = GRANTS.iter().find(|g| g.name == caller) else {
        return Code::Unauthenticated;
    };
    let glob = |p: &str| match p.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => p == key,
    };
    let allowed = g.operations.contains(&op)
        && g.apps.iter().any(|a| *a == "*" || *a == app)
        && (op != "send" || g.templates.is_empty() || g.templates.iter().any(|p| glob(p)));
    if allowed {
        Code::Ok
    } else {
        Code::PermissionDenied
    }
}

/// One cell: `caller` does `op` on `app`; the code it got.
async fn attempt(c: &Checked, caller: &str, op: &str, app: &str) -> (Code, String) {
    let code = |r: Result<(), Status>| match r {
        Ok(()) => (Code::Ok, String::new()),
        Err(s) => (s.code(), s.message().to_string()),
    };
    match op {
        "send" => code(
            c.delivery()
                .await
                .send(c.req(caller, send_to(app, "T-cell")))
                .await
                .map(drop),
        ),
        "read_logs" => code(
            c.logs()
                .await
                .query_logs(c.req(
                    caller,
                    QueryLogsRequest {
                        filter: Some(LogFilter {
                            app_id: app.into(),
                            ..Default::default()
                        }),
                        page_size: 5,
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
        ),
        "manage_templates" => {
            let mut templates = TemplateServiceClient::new(c.t.channel("template").await);
            let mut copy = templates
                .get_template(c.req(
                    "ops",
                    GetTemplateRequest {
                        key: key_of(app).into(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .template
                .unwrap();
            copy.key = format!("cell_{}_{}", caller.replace('-', "_"), app);
            copy.version = 0;
            code(
                templates
                    .upsert_template(c.req(
                        caller,
                        UpsertTemplateRequest {
                            template: Some(copy),
                            expected_version: 0,
                        },
                    ))
                    .await
                    .map(drop),
            )
        }
        "replay" => code(
            c.delivery()
                .await
                .list_dead_letters(c.req(
                    caller,
                    ListDeadLettersRequest {
                        filter: Some(DeadLetterFilter {
                            app_id: app.into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
        ),
        "token" => code(
            TokenServiceClient::new(c.t.channel("token").await)
                .get_access_token(c.req(caller, GetAccessTokenRequest { app_id: app.into() }))
                .await
                .map(drop),
        ),
        other => panic!("no operation {other}"),
    }
}

const OPERATIONS: [&str; 5] = ["send", "read_logs", "manage_templates", "replay", "token"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_operation_and_app_is_allowed_or_refused_as_the_grants_say() {
    let c = start().await;
    let callers: Vec<&str> = GRANTS
        .iter()
        .map(|g| g.name)
        .chain(["stranger", "forged", "nobody"])
        .collect();
    let mut wrong = Vec::new();
    let mut cells = 0;
    for caller in &callers {
        for op in OPERATIONS {
            for app in APPS {
                let want = expected(caller, op, app, key_of(app));
                let (got, message) = attempt(&c, caller, op, app).await;
                cells += 1;
                if got != want {
                    wrong.push(format!(
                        "{caller} {op} {app}: {got:?} ({message}), want {want:?}"
                    ));
                }
                // A refusal says who and what, never a token.
                if got == Code::PermissionDenied {
                    assert!(
                        message.contains(caller) && message.contains(op),
                        "{caller} {op} {app}: {message}"
                    );
                }
                assert!(!message.contains("eyJ"), "a token in {message}");
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(cells, callers.len() * OPERATIONS.len() * APPS.len());
}
