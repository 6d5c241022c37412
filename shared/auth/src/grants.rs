//! Who may do what: per configured caller, the apps (`*` for all), the
//! template keys (globs) and the operations. A caller is known by the
//! subjects that authenticate as it (a JWT's `sub`, or a workload's SPIFFE
//! id); its configured name is what records, spans and metrics carry.

use crate::operation::Operation;
use serde::Deserialize;
use std::collections::BTreeSet;

/// One caller's grants, as configured.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerGrant {
    /// A short name (a bounded metric label), e.g. `orders`.
    pub name: String,
    /// JWT `sub` values and SPIFFE ids (`spiffe://<domain>/ns/<ns>/sa/<sa>`)
    /// that are this caller.
    pub subjects: Vec<String>,
    /// App ids, or `*`.
    pub apps: Vec<String>,
    /// Template key globs (`*` any run of characters); empty: every key.
    pub templates: Vec<String>,
    pub operations: BTreeSet<Operation>,
}

/// Why a set of grants is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("callers[{0}]: a caller needs a name")]
    NoName(usize),
    #[error("callers[{index}] ({name}): no subjects: nobody could be this caller")]
    NoSubjects { index: usize, name: String },
    #[error("subject {subject:?} is both {first} and {second}")]
    SharedSubject {
        subject: String,
        first: String,
        second: String,
    },
    #[error("two callers are named {0}")]
    SharedName(String),
}

/// What a caller wants to do, checked against its grant.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub operation: Operation,
    /// The app it acts on, when the call names one.
    pub app_id: Option<&'a str>,
    /// The template key it acts on, when the call names one.
    pub template_key: Option<&'a str>,
}

/// Every caller's grants.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Shared: every call of a caller carries its grant.
    callers: Vec<std::sync::Arc<CallerGrant>>,
}

impl Grants {
    /// Checks the configured grants: named, with subjects, no subject for
    /// two callers.
    pub fn new(callers: Vec<CallerGrant>) -> Result<Self, GrantError> {
        let mut subjects = std::collections::HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (index, c) in callers.iter().enumerate() {
            if c.name.is_empty() {
                return Err(GrantError::NoName(index));
            }
            if !names.insert(c.name.as_str()) {
                return Err(GrantError::SharedName(c.name.clone()));
            }
            if c.subjects.is_empty() {
                return Err(GrantError::NoSubjects {
                    index,
                    name: c.name.clone(),
                });
            }
            for s in &c.subjects {
                if let Some(first) = subjects.insert(s.as_str(), c.name.as_str()) {
                    return Err(GrantError::SharedSubject {
                        subject: s.clone(),
                        first: first.into(),
                        second: c.name.clone(),
                    });
                }
            }
        }
        Ok(Self {
            callers: callers.into_iter().map(std::sync::Arc::new).collect(),
        })
    }

    /// The caller a subject authenticates as.
    pub fn caller(&self, subject: &str) -> Option<&std::sync::Arc<CallerGrant>> {
        self.callers
            .iter()
            .find(|c| c.subjects.iter().any(|s| s == subject))
    }
}

impl CallerGrant {
    /// Whether the grant covers `r`.
    pub fn allows(&self, r: Request<'_>) -> bool {
        self.operations.contains(&r.operation)
            && r.app_id.is_none_or(|app| self.covers_app(app))
            && r.template_key.is_none_or(|key| {
                self.templates.is_empty() || self.templates.iter().any(|g| glob(g, key))
            })
    }

    /// Whether the grant covers `app_id` (for any operation).
    pub fn covers_app(&self, app_id: &str) -> bool {
        self.apps.iter().any(|a| a == "*" || a == app_id)
    }

    /// The apps it may see, `None` for all (a log query is narrowed to them).
    pub fn apps(&self) -> Option<Vec<&str>> {
        if self.apps.iter().any(|a| a == "*") {
            None
        } else {
            Some(self.apps.iter().map(String::as_str).collect())
        }
    }
}

/// `*` matches any run of characters; everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders() -> CallerGrant {
        CallerGrant {
            name: "orders".into(),
            subjects: vec!["spiffe://cluster.local/ns/shop/sa/orders".into()],
            apps: vec!["wx_a".into()],
            templates: vec!["order_*".into()],
            operations: [Operation::Send, Operation::ReadLogs].into(),
        }
    }

    #[test]
    fn a_grant_covers_its_apps_templates_and_operations_only() {
        let g = orders();
        let send = |app, key| Request {
            operation: Operation::Send,
            app_id: Some(app),
            template_key: Some(key),
        };
        assert!(g.allows(send("wx_a", "order_shipped")));
        assert!(!g.allows(send("wx_b", "order_shipped")));
        assert!(!g.allows(send("wx_a", "refund_done")));
        assert!(!g.allows(Request {
            operation: Operation::Replay,
            app_id: Some("wx_a"),
            template_key: None,
        }));
        assert_eq!(g.apps(), Some(vec!["wx_a"]));
        let all = CallerGrant {
            apps: vec!["*".into()],
            templates: Vec::new(),
            ..orders()
        };
        assert!(all.allows(send("wx_z", "anything")));
        assert_eq!(all.apps(), None);
    }

    #[test]
    fn globs() {
        assert!(glob("order_*", "order_shipped"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxcyyb"));
        assert!(!glob("order", "order_shipped"));
        assert!(!glob("ab*ba", "aba"), "the ends do not overlap");
    }

    #[test]
    fn bad_grants_are_refused_naming_what() {
        let twice = Grants::new(vec![
            orders(),
            CallerGrant {
                name: "billing".into(),
                ..orders()
            },
        ]);
        assert!(matches!(twice, Err(GrantError::SharedSubject { .. })));
        let nobody = Grants::new(vec![CallerGrant {
            subjects: Vec::new(),
            ..orders()
        }]);
        assert_eq!(
            nobody.unwrap_err().to_string(),
            "callers[0] (orders): no subjects: nobody could be this caller"
        );
        let g = Grants::new(vec![orders()]).unwrap();
        assert_eq!(
            g.caller("spiffe://cluster.local/ns/shop/sa/orders")
                .map(|c| c.name.as_str()),
            Some("orders")
        );
        assert!(
            g.caller("spiffe://cluster.local/ns/shop/sa/other")
                .is_none()
        );
    }
}
