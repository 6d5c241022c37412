//! The caller of the call being served, as the gate layer
//! ([`crate::rpc::GateLayer`]) found it, and the checks a service makes
//! once it knows which app and template a call touches.
//!
//! The gate checks the operation a method needs before the request is
//! decoded; the app is often known only later (a `Send` names a template,
//! whose app the template service knows), so services ask
//! [`Caller::current`] then. The caller is a task-local of the call, like
//! the forwarded mesh headers: a call served without a gate (in-process, in
//! tests) is [`Caller::unchecked`] and may do anything, as with
//! `auth.mode: off`.

use crate::failure::{Failure, Reason};
use std::sync::Arc;
use tonic::Code;
use wxpush_auth::{CallerGrant, Operation, Request};

/// The caller name of a call that was not checked (`auth.mode: off`).
pub const UNCHECKED: &str = "anonymous";

/// Who is calling, and what it may do.
#[derive(Debug, Clone)]
pub struct Caller {
    grant: Option<Arc<CallerGrant>>,
}

tokio::task_local! {
    static CALLER: Caller;
}

impl Caller {
    /// A caller nobody checked: may do anything.
    pub fn unchecked() -> Self {
        Self { grant: None }
    }

    /// A configured caller with its grant (shared, not copied per call).
    pub fn granted(grant: impl Into<Arc<CallerGrant>>) -> Self {
        Self {
            grant: Some(grant.into()),
        }
    }

    /// The caller of the call this task serves.
    pub fn current() -> Self {
        CALLER
            .try_with(Caller::clone)
            .unwrap_or_else(|_| Caller::unchecked())
    }

    /// Runs `f` as a call of this caller.
    pub async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        CALLER.scope(self, f).await
    }

    /// The configured caller's name ([`UNCHECKED`] when unchecked): a
    /// bounded label, never a token's subject.
    pub fn name(&self) -> &str {
        self.grant.as_ref().map_or(UNCHECKED, |g| g.name.as_str())
    }

    /// Whether the caller holds `op` (for any app).
    pub fn holds(&self, op: Operation) -> bool {
        self.grant
            .as_ref()
            .is_none_or(|g| g.operations.contains(&op))
    }

    /// Whether the caller may see `app_id`'s messages.
    pub fn sees_app(&self, app_id: &str) -> bool {
        self.grant.as_ref().is_none_or(|g| g.covers_app(app_id))
    }

    /// The apps it may see, `None` for every app.
    pub fn apps(&self) -> Option<Vec<String>> {
        let grant = self.grant.as_ref()?;
        grant
            .apps()
            .map(|apps| apps.into_iter().map(str::to_string).collect())
    }

    /// `op` on `app_id` (and `template_key`, when the call names one), or
    /// PERMISSION_DENIED naming the operation, the app and the template.
    pub fn check(
        &self,
        op: Operation,
        app_id: &str,
        template_key: Option<&str>,
    ) -> Result<(), Failure> {
        let Some(grant) = &self.grant else {
            return Ok(());
        };
        let request = Request {
            operation: op,
            app_id: Some(app_id),
            template_key,
        };
        if grant.allows(request) {
            return Ok(());
        }
        let what = match template_key {
            Some(key) if grant.covers_app(app_id) && grant.operations.contains(&op) => {
                format!("{op} with template {key} of app {app_id}")
            }
            _ => format!("{op} for app {app_id}"),
        };
        Err(denied(self.name(), &what).with("app_id", app_id))
    }
}

/// PERMISSION_DENIED: `caller` may not do `what`.
pub fn denied(caller: &str, what: &str) -> Failure {
    Failure::new(
        Code::PermissionDenied,
        Reason::PermissionDenied,
        format!("caller {caller} has no grant to {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders() -> Caller {
        Caller::granted(CallerGrant {
            name: "orders".into(),
            subjects: vec!["o".into()],
            apps: vec!["wx_a".into()],
            templates: vec!["order_*".into()],
            operations: [Operation::Send].into(),
        })
    }

    #[tokio::test]
    async fn a_call_knows_its_caller_and_unchecked_work_may_do_anything() {
        assert_eq!(Caller::current().name(), UNCHECKED);
        assert!(
            Caller::current()
                .check(Operation::Token, "wx_z", None)
                .is_ok()
        );
        orders()
            .scope(async {
                let c = Caller::current();
                assert_eq!(c.name(), "orders");
                assert!(c.check(Operation::Send, "wx_a", Some("order_paid")).is_ok());
                let other = c.check(Operation::Send, "wx_b", None).unwrap_err();
                assert_eq!(other.code(), Code::PermissionDenied);
                let status: tonic::Status = other.into();
                assert_eq!(
                    status.message(),
                    "caller orders has no grant to send for app wx_b"
                );
                let key: tonic::Status = c
                    .check(Operation::Send, "wx_a", Some("refund_done"))
                    .unwrap_err()
                    .into();
                assert_eq!(
                    key.message(),
                    "caller orders has no grant to send with template refund_done of app wx_a"
                );
                assert!(!c.holds(Operation::ReadLogs));
                assert_eq!(c.apps(), Some(vec!["wx_a".to_string()]));
            })
            .await;
    }
}
