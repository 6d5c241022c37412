//! The limits every wxpush request is held to, in one place (the README's
//! "Limits" table lists them). A request over one is refused with
//! `INVALID_ARGUMENT` naming the field and the limit; nothing of it is
//! stored.

use crate::status::Violation;
use std::collections::HashMap;

/// Most variables one message may carry.
pub const MAX_VARIABLES: usize = 100;
/// Longest variable name, in characters.
pub const MAX_VARIABLE_NAME_CHARS: usize = 64;
/// Longest variable value, in characters.
pub const MAX_VARIABLE_VALUE_CHARS: usize = 1000;
/// Most bytes of variables (names and values) one `SendBatch` may carry in
/// all, counting the common variables once per recipient: what the queue
/// would hold for it.
pub const MAX_BATCH_VARIABLE_BYTES: usize = 2 << 20;
/// Longest `url`, `page` or mini program `pagepath`, in characters.
pub const MAX_LINK_CHARS: usize = 1024;
/// Longest mini program appid, in characters.
pub const MAX_APPID_CHARS: usize = 64;
/// Furthest ahead a `send_at` may be (30 days).
pub const MAX_SEND_AT_AHEAD_SECS: i64 = 30 * 86_400;

/// Violations of a variable map, each naming `{field}.{name}` or `field`.
pub fn check_variables(field: &str, vars: &HashMap<String, String>, v: &mut Vec<Violation>) {
    if vars.len() > MAX_VARIABLES {
        v.push(Violation::new(
            field,
            format!("{} variables, at most {MAX_VARIABLES} allowed", vars.len()),
        ));
    }
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        if name.chars().count() > MAX_VARIABLE_NAME_CHARS {
            v.push(Violation::new(
                field,
                format!("variable name longer than {MAX_VARIABLE_NAME_CHARS} characters"),
            ));
        }
        let n = vars[name].chars().count();
        if n > MAX_VARIABLE_VALUE_CHARS {
            v.push(Violation::new(
                format!("{field}.{name}"),
                format!("is {n} characters, at most {MAX_VARIABLE_VALUE_CHARS} allowed"),
            ));
        }
    }
}

/// Bytes of a variable map's names and values.
pub fn variable_bytes(vars: &HashMap<String, String>) -> usize {
    vars.iter().map(|(k, v)| k.len() + v.len()).sum()
}
