//! WeChat's value rules for subscribe-message fields (小程序订阅消息), written
//! from `wechat-api.md`: the prefix of a data key is its type (`thing2` is a
//! `thing`), and WeChat rejects a message whose value breaks its type's rule
//! with 47003. Checking them here turns a WeChat rejection after the fact into
//! an INVALID_ARGUMENT naming the field, before anything is sent.
//!
//! This is our own reading of the rules, deliberately not the sandbox's code:
//! the sandbox imitates WeChat independently and the tests compare the two.
//! Lengths count characters, not bytes. Types not in the reference are
//! accepted when non-empty, so a new WeChat type never blocks sending.

use crate::content::field_type;
use chrono::NaiveDate;

/// The documented types and their rules, for error messages and docs.
pub const RULES: &[(&str, &str)] = &[
    ("thing", "up to 20 characters"),
    ("number", "up to 32 digits, may have a decimal point"),
    ("letter", "up to 32 letters"),
    ("symbol", "up to 5 symbols"),
    ("character_string", "up to 32 digits, letters or symbols"),
    (
        "time",
        "a 24-hour time, optionally after a date: 15:01, 2019年10月1日 15:01",
    ),
    (
        "date",
        "a date, optionally with a 24-hour time: 2019年10月1日, 2019-10-01 15:01",
    ),
    (
        "amount",
        "a currency symbol and up to 10 digits, may have decimals and end with 元",
    ),
    ("phone_number", "up to 17 digits and symbols"),
    (
        "car_number",
        "up to 8 characters; first and last may be Chinese, the rest letters or digits",
    ),
    (
        "name",
        "up to 10 Chinese characters, or up to 20 letters/symbols without Chinese",
    ),
    ("phrase", "up to 5 Chinese characters"),
    ("short_thing", "up to 5 characters (unconfirmed type)"),
];

/// Why one value breaks its field's rule: the type (`thing`) and the problem
/// with the offending length or character, for a field violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    /// The field type whose rule failed, e.g. `thing`.
    pub rule: String,
    /// What is wrong, e.g. `is 21 characters, at most 20 allowed`.
    pub problem: String,
}

impl std::fmt::Display for RuleViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "breaks the `{}` rule: {}", self.rule, self.problem)
    }
}

/// Checks one subscribe-message value against the rule of its field's type.
pub fn check_field(name: &str, value: &str) -> Result<(), RuleViolation> {
    let rule = field_type(name);
    check_type(rule, value).map_err(|problem| RuleViolation {
        rule: rule.to_string(),
        problem,
    })
}

fn check_type(rule: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    let n = value.chars().count();
    match rule {
        "thing" => {
            at_most(n, 20)?;
            only(value, |c| !c.is_control(), "printable characters")
        }
        "short_thing" => {
            at_most(n, 5)?;
            only(value, |c| !c.is_control(), "printable characters")
        }
        "number" => {
            at_most(n, 32)?;
            only(
                value,
                |c| c.is_ascii_digit() || c == '.',
                "digits and a decimal point",
            )?;
            decimal(value)
                .then_some(())
                .ok_or_else(|| "is not a number like 12 or 12.5".into())
        }
        "letter" => {
            at_most(n, 32)?;
            only(value, |c| c.is_ascii_alphabetic(), "letters")
        }
        "symbol" => {
            at_most(n, 5)?;
            only(value, is_symbol, "symbols")
        }
        "character_string" => {
            at_most(n, 32)?;
            only(
                value,
                |c| c.is_ascii_alphanumeric() || is_symbol(c),
                "digits, letters or symbols",
            )
        }
        "time" => ranged(
            value,
            is_time,
            "is not a 24-hour time like 15:01 or 2019年10月1日 15:01",
        ),
        "date" => ranged(
            value,
            is_date,
            "is not a date like 2019年10月1日 or 2019-10-01 15:01",
        ),
        "amount" => amount(value),
        "phone_number" => {
            at_most(n, 17)?;
            only(
                value,
                |c| c.is_ascii_digit() || is_symbol(c),
                "digits and symbols",
            )
        }
        "car_number" => car_number(value),
        "name" if value.chars().any(is_chinese) => {
            if n > 10 {
                return Err(format!(
                    "is {n} characters, at most 10 allowed with Chinese"
                ));
            }
            only(value, |c| is_chinese(c) || c == '·', "Chinese characters")
        }
        "name" => {
            at_most(n, 20)?;
            only(
                value,
                |c| c.is_ascii_alphabetic() || is_symbol(c),
                "letters or symbols",
            )
        }
        "phrase" => {
            at_most(n, 5)?;
            only(value, is_chinese, "Chinese characters")
        }
        _ => Ok(()),
    }
}

fn at_most(n: usize, max: usize) -> Result<(), String> {
    if n > max {
        Err(format!("is {n} characters, at most {max} allowed"))
    } else {
        Ok(())
    }
}

/// The first character that breaks `ok`, named with its code point so an
/// invisible one (a tab, a full-width space) can be found.
fn only(value: &str, ok: impl Fn(char) -> bool, what: &str) -> Result<(), String> {
    match value.chars().find(|&c| !ok(c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "contains {c:?} (U+{:04X}); only {what} allowed",
            c as u32
        )),
    }
}

/// A CJK ideograph (basic, extension A and B, compatibility).
fn is_chinese(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF)
}

/// Punctuation or another printable, non-space character that is not a
/// letter or digit (`-`, `#`, `，`, `¥`).
fn is_symbol(c: char) -> bool {
    !(c.is_alphanumeric() || c.is_whitespace() || c.is_control())
}

/// Digits with at most one decimal point between digits: `12`, `12.50`.
fn decimal(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(s),
    }
}

/// Times and dates may be a range of two points joined by `~`.
fn ranged(value: &str, ok: fn(&str) -> bool, problem: &str) -> Result<(), String> {
    let points: Vec<&str> = value.split('~').map(str::trim).collect();
    if points.len() <= 2 && points.iter().all(|p| ok(p)) {
        Ok(())
    } else {
        Err(problem.into())
    }
}

/// `H:MM` or `HH:MM[:SS]`, 24-hour.
fn is_clock(s: &str) -> bool {
    let part = |p: &str, len: std::ops::RangeInclusive<usize>, max: u32| {
        len.contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|v| v <= max)
    };
    match s.split(':').collect::<Vec<_>>().as_slice() {
        [h, m] => part(h, 1..=2, 23) && part(m, 2..=2, 59),
        [h, m, sec] => part(h, 1..=2, 23) && part(m, 2..=2, 59) && part(sec, 2..=2, 59),
        _ => false,
    }
}

/// `2019年10月1日`, `2019-10-01` or `2019/10/01`, a real calendar day.
fn is_calendar_date(s: &str) -> bool {
    let parts: Vec<&str> = match s.strip_suffix('日') {
        Some(ymd) => ymd.split(['年', '月']).collect(),
        None if s.contains('-') => s.split('-').collect(),
        None => s.split('/').collect(),
    };
    let num = |p: &str| {
        (!p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    match parts.as_slice() {
        [y, m, d] if y.len() == 4 => match (num(y), num(m), num(d)) {
            (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y as i32, m, d).is_some(),
            _ => false,
        },
        _ => false,
    }
}

fn is_time(s: &str) -> bool {
    match s.rsplit_once(' ') {
        Some((date, clock)) => is_calendar_date(date.trim()) && is_clock(clock),
        None => is_clock(s),
    }
}

fn is_date(s: &str) -> bool {
    match s.split_once(' ') {
        Some((date, clock)) => is_calendar_date(date) && is_clock(clock.trim()),
        None => is_calendar_date(s),
    }
}

fn amount(value: &str) -> Result<(), String> {
    const CURRENCY: &[char] = &['¥', '￥', '$', '€', '£', '₩', '₹', '₽'];
    let body = value.strip_prefix(CURRENCY).unwrap_or(value);
    let body = body.strip_suffix('元').unwrap_or(body);
    if !decimal(body) {
        return Err("is not an amount like ¥99.00 or 99.5元".into());
    }
    let int_digits = body.split('.').next().map_or(0, str::len);
    if int_digits > 10 {
        return Err(format!(
            "has {int_digits} digits before the decimal point, at most 10 allowed"
        ));
    }
    Ok(())
}

fn car_number(value: &str) -> Result<(), String> {
    let chars: Vec<char> = value.chars().collect();
    at_most(chars.len(), 8)?;
    let last = chars.len() - 1;
    match chars
        .iter()
        .enumerate()
        .find(|&(i, &c)| !(c.is_ascii_alphanumeric() || ((i == 0 || i == last) && is_chinese(c))))
    {
        None => Ok(()),
        Some((i, c)) => Err(format!(
            "contains {c:?} at position {}; only letters or digits allowed there (Chinese only first or last)",
            i + 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str, value: &str) {
        assert_eq!(check_field(name, value), Ok(()), "{name}={value:?}");
    }

    fn bad(name: &str, value: &str, problem_has: &str) {
        let e = check_field(name, value).expect_err(&format!("{name}={value:?} must fail"));
        assert_eq!(e.rule, field_type(name));
        assert!(e.problem.contains(problem_has), "{name}={value:?}: {e}");
    }

    #[test]
    fn thing_counts_characters_not_bytes() {
        ok("thing2", &"中".repeat(20));
        bad("thing2", &"中".repeat(21), "is 21 characters, at most 20");
        ok("thing2", &"a".repeat(20));
        bad("thing2", &"a".repeat(21), "21 characters");
        bad("thing2", "a\tb", "U+0009");
        bad("thing2", "", "is empty");
    }

    #[test]
    fn every_type_at_its_limits() {
        ok("number1", &"9".repeat(32));
        bad("number1", &"9".repeat(33), "33 characters");
        ok("number1", "12.5");
        bad("number1", "12a", "'a'");
        bad("number1", "1.2.3", "not a number");
        ok("letter1", &"a".repeat(32));
        bad("letter1", &"a".repeat(33), "33 characters");
        bad("letter1", "ab1", "'1'");
        ok("symbol1", "%$%$%");
        bad("symbol1", "%$%$%$", "6 characters");
        bad("symbol1", "%a", "'a'");
        ok("character_string1", &"A-1_".repeat(8));
        bad("character_string1", &"A".repeat(33), "33 characters");
        bad("character_string1", "SF中1", "'中'");
        ok("time1", "15:01");
        ok("time1", "2019年10月1日 15:01");
        ok("time1", "2019-10-01 15:01 ~ 2019-10-01 16:00");
        bad("time1", "24:00", "not a 24-hour time");
        bad("time1", "15:1", "not a 24-hour time");
        ok("date1", "2019年10月1日");
        ok("date1", "2019-10-01 15:01");
        bad("date1", "2019-02-30", "not a date");
        bad("date1", "yesterday", "not a date");
        ok("amount3", "¥1234567890.99");
        ok("amount3", "99.5元");
        bad("amount3", "¥12345678901", "11 digits");
        bad("amount3", "¥12,00", "not an amount");
        ok("phone_number1", "+86-13800000000");
        ok("phone_number1", "+86-1380000000000");
        bad("phone_number1", "+86-13800000000000", "18 characters");
        bad("phone_number1", "138 0000", "U+0020");
        ok("car_number1", "粤B12345");
        ok("car_number1", "粤B123456");
        bad("car_number1", "粤B1234567", "9 characters");
        bad("car_number1", "粤中12345", "position 2");
        ok("name1", &"张".repeat(10));
        bad("name1", &"张".repeat(11), "11 characters, at most 10");
        bad("name1", "张三x", "'x'");
        ok("name1", &"J".repeat(20));
        bad("name1", &"J".repeat(21), "21 characters");
        ok("phrase1", "已发货已发");
        bad("phrase1", "已发货已发货", "6 characters");
        bad("phrase1", "ok", "'o'");
        ok("short_thing1", "五个字符呢");
        bad("short_thing1", "六个字符呢吧", "6 characters");
        ok("future_type1", "anything");
        bad("future_type1", "", "is empty");
    }
}
