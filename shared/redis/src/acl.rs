//! One Redis ACL user per service, limited to the keys and channels that
//! service owns: a logquery pod holding its Redis password cannot read the
//! tokens the token service guards, nor a template pod touch the queue.
//! `wxpush redis-acl` prints these rules; the Helm chart renders the same
//! and gives each service its own credentials.

/// A wxpush service that talks to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Token,
    Template,
    Delivery,
    Logquery,
    Callback,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Token,
        Service::Template,
        Service::Delivery,
        Service::Logquery,
        Service::Callback,
    ];

    /// `token`, `template`, `delivery`, `logquery`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Token => "token",
            Service::Template => "template",
            Service::Delivery => "delivery",
            Service::Logquery => "logquery",
            Service::Callback => "callback",
        }
    }

    /// The ACL user name: `wxpush-token`...
    pub fn user(self) -> String {
        format!("wxpush-{}", self.name())
    }

    /// Key patterns (`~` read and write, `%W~` write only) and channel
    /// patterns (`&`) the service needs under `prefix`.
    pub fn patterns(self, prefix: &str) -> Vec<String> {
        let p = prefix;
        let list: &[&str] = match self {
            Service::Token => &["~{p}token:*"],
            Service::Template => &[
                "~{p}template:*",
                "~{p}templates:*",
                "~{p}wechat_templates:*",
            ],
            // The event stream (`{p}events:{tag}`, one key per
            // partition): delivery only appends to it.
            Service::Delivery => &[
                "~{p}queue",
                "~{p}queue:*",
                "~{p}msg:*",
                "~{p}dlq",
                "~{p}dlq:*",
                "~{p}idem:*",
                "~{p}rate:*",
                "%W~{p}events:*",
                // The event stream's partition count, checked at start.
                "~{p}events:partitions",
                // The consent ledger, fed by WeChat's pushes from the
                // callback stream (read in its own group; undecodable
                // entries set aside).
                "~{p}consent:*",
                "~{p}callbacks:{callbacks}",
                "~{p}callbacks:{callbacks}:rejected",
            ],
            // WeChat's receipts come on the callback stream.
            Service::Logquery => &[
                "~{p}log:*",
                "~{p}events",
                "~{p}events:*",
                "~{p}callbacks:*",
                "&{p}log:tail",
            ],
            // The stream of verified pushes and the ids of those seen.
            Service::Callback => &["~{p}callbacks:*"],
        };
        list.iter().map(|s| s.replace("{p}", p)).collect()
    }

    /// The arguments of `ACL SETUSER <user> ...` without the password:
    /// nothing but its own keys and channels, no dangerous or admin
    /// commands (FLUSHALL, KEYS, CONFIG, DEBUG...).
    pub fn rules(self, prefix: &str) -> Vec<String> {
        let mut rules = vec!["on".to_string(), "resetkeys".into(), "resetchannels".into()];
        rules.extend(self.patterns(prefix));
        let commands: &[&str] = match self {
            // Reachable from the internet's side: only what handing a push
            // on takes (the script, and the cluster client's slot map).
            Service::Callback => &[
                "-@all",
                "+ping",
                "+info",
                "+evalsha",
                "+eval",
                "+script|load",
                "+set",
                "+xadd",
                "+cluster|slots",
                "+asking",
            ],
            // INFO (in @dangerous) for the start-up check of
            // maxmemory-policy and persistence; it shows no secrets.
            _ => &["-@all", "+@all", "-@dangerous", "-@admin", "+info"],
        };
        rules.extend(commands.iter().map(|c| c.to_string()));
        rules
    }

    /// `ACL SETUSER` for the service, with `>PASSWORD` for an operator to
    /// fill in.
    pub fn setuser_line(self, prefix: &str) -> String {
        format!(
            "ACL SETUSER {} {} >PASSWORD",
            self.user(),
            self.rules(prefix).join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_gets_only_its_own_keys() {
        let token = Service::Token.rules("wxpush:");
        assert!(token.contains(&"~wxpush:token:*".to_string()));
        assert!(
            !token
                .iter()
                .any(|r| r.contains("log:") || r.contains("queue"))
        );
        let logquery = Service::Logquery.patterns("p:");
        assert!(logquery.contains(&"&p:log:tail".to_string()));
        assert!(!logquery.iter().any(|r| r.contains("token")));
        assert!(
            Service::Delivery
                .setuser_line("wxpush:")
                .starts_with("ACL SETUSER wxpush-delivery on resetkeys")
        );
    }
}
