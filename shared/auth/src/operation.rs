//! What a caller may be granted: one operation per group of RPCs.

use serde::Deserialize;
use std::fmt;
use std::str::FromStr;

/// An operation a grant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `Send`, `SendAsync`, `SendBatch`, `GetMessage`, `GetConsent`.
    Send,
    /// `QueryLogs`, `GetMessageHistory`, `GetStats`, `TailLogs`.
    ReadLogs,
    /// The rendered data of a record (with `read_logs`).
    ReadContent,
    /// `UpsertTemplate`, `DeleteTemplate`, `SyncTemplates` (reading
    /// templates needs no grant beyond being a known caller).
    ManageTemplates,
    /// `ListDeadLetters`, `ReplayDeadLetters`.
    Replay,
    /// `GetAccessToken`, `InvalidateAccessToken`: the suite's own services.
    Token,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::Send,
        Operation::ReadLogs,
        Operation::ReadContent,
        Operation::ManageTemplates,
        Operation::Replay,
        Operation::Token,
    ];

    /// Its name in grants.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Send => "send",
            Operation::ReadLogs => "read_logs",
            Operation::ReadContent => "read_content",
            Operation::ManageTemplates => "manage_templates",
            Operation::Replay => "replay",
            Operation::Token => "token",
        }
    }

    /// The operation a gRPC method needs; `None` for what any caller may
    /// call (health, reflection, reading templates, breaker and token
    /// status).
    pub fn of_method(path: &str) -> Option<Operation> {
        let (service, method) = path.trim_start_matches('/').split_once('/')?;
        match (service, method) {
            (
                "wxpush.v1.DeliveryService",
                "Send" | "SendAsync" | "SendBatch" | "GetMessage" | "GetConsent",
            ) => Some(Operation::Send),
            ("wxpush.v1.DeliveryService", "ListDeadLetters" | "ReplayDeadLetters") => {
                Some(Operation::Replay)
            }
            ("wxpush.v1.LogQueryService", _) => Some(Operation::ReadLogs),
            (
                "wxpush.v1.TemplateService",
                "UpsertTemplate" | "DeleteTemplate" | "SyncTemplates",
            ) => Some(Operation::ManageTemplates),
            ("wxpush.v1.TokenService", "GetAccessToken" | "InvalidateAccessToken") => {
                Some(Operation::Token)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An operation name no grant knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown operation {0:?} (one of send, read_logs, read_content, manage_templates, replay, token)"
)]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| UnknownOperation(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_operations_and_names_round_trip() {
        assert_eq!(
            Operation::of_method("/wxpush.v1.DeliveryService/SendBatch"),
            Some(Operation::Send)
        );
        assert_eq!(
            Operation::of_method("/wxpush.v1.LogQueryService/TailLogs"),
            Some(Operation::ReadLogs)
        );
        assert_eq!(
            Operation::of_method("/wxpush.v1.TokenService/GetAccessToken"),
            Some(Operation::Token)
        );
        assert_eq!(
            Operation::of_method("/wxpush.v1.TemplateService/GetTemplate"),
            None
        );
        assert_eq!(Operation::of_method("/grpc.health.v1.Health/Check"), None);
        for op in Operation::ALL {
            assert_eq!(op.name().parse::<Operation>(), Ok(op));
        }
        assert_eq!(
            "sned".parse::<Operation>().unwrap_err().to_string(),
            "unknown operation \"sned\" (one of send, read_logs, read_content, manage_templates, replay, token)"
        );
    }
}
