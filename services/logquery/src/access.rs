//! What a caller may see of the log: only its apps' records (a filter
//! naming another app is refused, an unfiltered query is narrowed to its
//! apps), and the rendered content of a record only with `read_content`;
//! otherwise each value is masked as its length and a short keyed hash, so
//! two records can still be compared without being read.

use crate::error::LogQueryError;
use wxpush_auth::Operation;
use wxpush_auth::privacy::KeyedHash;
use wxpush_proto::v1::{LogFilter, LogRecord};
use wxpush_server::caller::Caller;

/// The caller's view of the log.
#[derive(Debug, Clone)]
pub struct View {
    caller: Caller,
}

impl View {
    /// The view of the caller of the call this task serves.
    pub fn current() -> Self {
        Self {
            caller: Caller::current(),
        }
    }

    /// The filters a query runs as: the caller's filter when it names an
    /// app it may see (or it may see every app), one per app it may see
    /// otherwise (none: it sees nothing). A filter naming another app is
    /// PERMISSION_DENIED.
    pub fn narrow(&self, filter: &LogFilter) -> Result<Vec<LogFilter>, LogQueryError> {
        if !filter.app_id.is_empty() {
            return if self.caller.sees_app(&filter.app_id) {
                Ok(vec![filter.clone()])
            } else {
                Err(LogQueryError::Denied(wxpush_server::caller::denied(
                    self.caller.name(),
                    &format!("{} for app {}", Operation::ReadLogs, filter.app_id),
                )))
            };
        }
        Ok(match self.caller.apps() {
            None => vec![filter.clone()],
            Some(apps) => apps
                .into_iter()
                .map(|app_id| LogFilter {
                    app_id,
                    ..filter.clone()
                })
                .collect(),
        })
    }

    /// Whether the caller may see this record at all.
    pub fn sees(&self, r: &LogRecord) -> bool {
        self.caller.sees_app(&r.app_id)
    }

    /// The record as the caller may see it: its content masked without
    /// `read_content`.
    pub fn show(&self, mut r: LogRecord, masks: &Masker) -> LogRecord {
        if !self.caller.holds(Operation::ReadContent) && !r.data_json.is_empty() {
            r.data_json = masks.mask_json(&r.data_json);
        }
        r
    }
}

/// Masks content values with a keyed hash, cut to 8 hex digits
/// ([`KeyedHash`]).
#[derive(Debug, Clone)]
pub struct Masker {
    hash: KeyedHash,
}

impl Masker {
    /// With `key` (a configured secret, so every replica masks alike).
    pub fn new(key: &[u8]) -> Self {
        Self {
            hash: KeyedHash::new(key),
        }
    }

    /// Over a configured keyed hash.
    pub fn with(hash: KeyedHash) -> Self {
        Self { hash }
    }

    /// With a random key: masks compare within this process's answers only.
    pub fn random() -> Self {
        Self::with(KeyedHash::random())
    }

    /// `masked:<chars>:<hash>`.
    pub fn mask(&self, value: &str) -> String {
        format!(
            "masked:{}:{}",
            value.chars().count(),
            self.hash.hex(value, 4)
        )
    }

    /// WeChat's `data` with every value masked and the field names kept;
    /// anything else masked whole.
    pub fn mask_json(&self, json: &str) -> String {
        KeyedHash::map_values(json, |_| true, |v| self.mask(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_auth::CallerGrant;

    fn reader(operations: &[Operation]) -> Caller {
        Caller::granted(CallerGrant {
            name: "support".into(),
            subjects: vec!["s".into()],
            apps: vec!["wx_a".into(), "wx_c".into()],
            templates: Vec::new(),
            operations: operations.iter().copied().collect(),
        })
    }

    #[test]
    fn masks_keep_lengths_and_compare_without_showing() {
        let m = Masker::new(b"key");
        let json = r##"{"amount":{"value":"12.50"},"name":{"value":"张三","color":"#000"}}"##;
        let masked: serde_json::Value = serde_json::from_str(&m.mask_json(json)).unwrap();
        let amount = masked["amount"]["value"].as_str().unwrap();
        assert!(amount.starts_with("masked:5:") && amount.len() == "masked:5:".len() + 8);
        assert_eq!(masked["name"]["value"].as_str().unwrap(), m.mask("张三"));
        assert!(m.mask("张三").starts_with("masked:2:"));
        assert_eq!(masked["name"]["color"], "#000");
        assert_ne!(m.mask("12.50"), Masker::new(b"other").mask("12.50"));
        assert!(!m.mask_json("not json").contains("not json"));
    }

    #[tokio::test]
    async fn a_caller_sees_its_apps_and_content_only_with_read_content() {
        let masks = Masker::new(b"k");
        let record = LogRecord {
            app_id: "wx_a".into(),
            data_json: r#"{"phone":{"value":"13800000000"}}"#.into(),
            ..Default::default()
        };
        reader(&[Operation::ReadLogs])
            .scope(async {
                let view = View::current();
                let all = view.narrow(&LogFilter::default()).unwrap();
                let apps: Vec<&str> = all.iter().map(|f| f.app_id.as_str()).collect();
                assert_eq!(apps, ["wx_a", "wx_c"]);
                let other = LogFilter {
                    app_id: "wx_b".into(),
                    ..Default::default()
                };
                assert!(matches!(view.narrow(&other), Err(LogQueryError::Denied(_))));
                assert!(view.sees(&record));
                let shown = view.show(record.clone(), &masks);
                assert!(
                    !shown.data_json.contains("13800000000"),
                    "{}",
                    shown.data_json
                );
            })
            .await;
        reader(&[Operation::ReadLogs, Operation::ReadContent])
            .scope(async {
                let shown = View::current().show(record.clone(), &masks);
                assert_eq!(shown.data_json, record.data_json);
            })
            .await;
        // auth off: everything, in clear.
        let view = View::current();
        assert_eq!(view.narrow(&LogFilter::default()).unwrap().len(), 1);
        assert_eq!(
            view.show(record.clone(), &masks).data_json,
            record.data_json
        );
    }
}
