//! Subscribe-message field rules: the prefix of a `data` key is its type, and WeChat checks
//! each value against that type's rule (47003 naming the field when it fails).
//!
//! Lengths count characters, not bytes. Prefixes the reference does not list are accepted when
//! non-empty, so a newer template type never blocks a test; `short_thing` (≤5 chars) is checked.

use chrono::NaiveDate;

/// Checks one value against the rule of its key's type; `Err` is the reason, e.g.
/// "exceeds 20 characters", to be shown as `argument invalid! data.KEY.value REASON`.
pub fn check_field(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    let n = value.chars().count();
    let max = |limit: usize| {
        if n > limit {
            Err(format!("exceeds {limit} characters"))
        } else {
            Ok(())
        }
    };
    let all = |ok: fn(char) -> bool, what: &str| {
        if value.chars().all(ok) {
            Ok(())
        } else {
            Err(format!("must contain only {what}"))
        }
    };
    match field_type(key) {
        "thing" => {
            max(20)?;
            all(|c| !c.is_control(), "printable characters")
        }
        "short_thing" => {
            max(5)?;
            all(|c| !c.is_control(), "printable characters")
        }
        "number" => {
            max(32)?;
            if is_decimal(value) {
                Ok(())
            } else {
                Err("is not a number".into())
            }
        }
        "letter" => {
            max(32)?;
            all(|c| c.is_ascii_alphabetic(), "letters")
        }
        "symbol" => {
            max(5)?;
            all(is_symbol, "symbols")
        }
        "character_string" => {
            max(32)?;
            all(
                |c| c.is_ascii_alphanumeric() || is_symbol(c),
                "digits, letters or symbols",
            )
        }
        "time" => ranged(value, is_time, "is not a time"),
        "date" => ranged(value, is_date, "is not a date"),
        "amount" => check_amount(value),
        "phone_number" => {
            max(17)?;
            all(|c| c.is_ascii_digit() || is_symbol(c), "digits and symbols")
        }
        "car_number" => check_car_number(value),
        "name" => {
            if value.chars().any(is_chinese) {
                if n > 10 {
                    return Err("exceeds 10 Chinese characters".into());
                }
                all(|c| is_chinese(c) || c == '·', "Chinese characters")
            } else {
                max(20)?;
                all(
                    |c| c.is_ascii_alphabetic() || is_symbol(c),
                    "letters or symbols",
                )
            }
        }
        "phrase" => {
            if n > 5 {
                return Err("exceeds 5 characters".into());
            }
            all(is_chinese, "Chinese characters")
        }
        _ => Ok(()),
    }
}

/// The type of a data key: the key without its trailing digits (`thing2` → `thing`).
pub fn field_type(key: &str) -> &str {
    key.trim_end_matches(|c: char| c.is_ascii_digit())
}

/// The placeholder names of a template's content: `{{thing2.DATA}}` → `thing2`.
pub fn placeholders(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else { break };
        let inner = &rest[..end];
        if let Some(name) = inner.strip_suffix(".DATA") {
            out.push(name.to_string());
        }
        rest = &rest[end + 2..];
    }
    out
}

fn is_chinese(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF)
}

/// A symbol: punctuation or another non-alphanumeric, non-space, printable character.
fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()
}

fn is_decimal(s: &str) -> bool {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

/// Time and date values may be a range of two points joined by `~`.
fn ranged(value: &str, ok: fn(&str) -> bool, reason: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split('~').map(str::trim).collect();
    if parts.len() <= 2 && parts.iter().all(|p| ok(p)) {
        Ok(())
    } else {
        Err(reason.into())
    }
}

fn is_clock(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |p: &str, max: u32| {
        (1..=2).contains(&p.len())
            && p.chars().all(|c| c.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|v| v <= max)
    };
    match parts.as_slice() {
        [h, m] => num(h, 23) && m.len() == 2 && num(m, 59),
        [h, m, sec] => num(h, 23) && m.len() == 2 && num(m, 59) && sec.len() == 2 && num(sec, 59),
        _ => false,
    }
}

fn is_calendar_date(s: &str) -> bool {
    let nums: Vec<&str> = if let Some(rest) = s.strip_suffix('日') {
        rest.split(['年', '月']).collect()
    } else if s.contains('-') {
        s.split('-').collect()
    } else {
        s.split('/').collect()
    };
    let [y, m, d] = nums.as_slice() else {
        return false;
    };
    let parse = |p: &str| -> Option<u32> {
        (!p.is_empty() && p.chars().all(|c| c.is_ascii_digit())).then(|| p.parse().ok())?
    };
    match (parse(y), parse(m), parse(d)) {
        (Some(y), Some(m), Some(d)) if y >= 1000 => {
            NaiveDate::from_ymd_opt(y as i32, m, d).is_some()
        }
        _ => false,
    }
}

/// A 24-hour time, optionally preceded by a date.
fn is_time(s: &str) -> bool {
    match s.rsplit_once(' ') {
        Some((date, time)) => is_calendar_date(date.trim()) && is_clock(time),
        None => is_clock(s),
    }
}

/// A date, optionally followed by a 24-hour time.
fn is_date(s: &str) -> bool {
    match s.split_once(' ') {
        Some((date, time)) => is_calendar_date(date) && is_clock(time.trim()),
        None => is_calendar_date(s),
    }
}

fn check_amount(value: &str) -> Result<(), String> {
    const CURRENCY: &[char] = &['¥', '￥', '$', '€', '£', '₩', '₹', '₽', 'ƒ'];
    let body = value.strip_prefix(CURRENCY).unwrap_or(value);
    let body = body.strip_suffix('元').unwrap_or(body);
    let int = body.split('.').next().unwrap_or("");
    if !is_decimal(body) {
        return Err("is not an amount".into());
    }
    if int.len() > 10 {
        return Err("exceeds 10 digits".into());
    }
    Ok(())
}

fn check_car_number(value: &str) -> Result<(), String> {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() > 8 {
        return Err("exceeds 8 characters".into());
    }
    let last = chars.len() - 1;
    let ok = chars
        .iter()
        .enumerate()
        .all(|(i, &c)| c.is_ascii_alphanumeric() || ((i == 0 || i == last) && is_chinese(c)));
    if ok {
        Ok(())
    } else {
        Err("is not a car number".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_counts_chars_not_bytes() {
        let twenty: String = "中".repeat(20);
        assert!(check_field("thing2", &twenty).is_ok());
        let err = check_field("thing2", &format!("{twenty}中")).unwrap_err();
        assert_eq!(err, "exceeds 20 characters");
        assert_eq!(check_field("thing2", "").unwrap_err(), "is empty");
    }

    #[test]
    fn typed_fields() {
        assert!(check_field("number1", "12.5").is_ok());
        assert!(check_field("number1", "12a").is_err());
        assert!(check_field("letter1", "abc").is_ok());
        assert!(check_field("letter1", "ab1").is_err());
        assert!(check_field("symbol1", "%$").is_ok());
        assert!(check_field("symbol1", "%$%$%$").is_err());
        assert!(check_field("character_string1", "SF-1234_x").is_ok());
        assert!(check_field("character_string1", "中").is_err());
        assert!(check_field("time1", "15:01").is_ok());
        assert!(check_field("time1", "2019年10月1日 15:01").is_ok());
        assert!(check_field("time1", "2019-10-01 15:01").is_ok());
        assert!(check_field("time1", "25:01").is_err());
        assert!(check_field("date1", "2019年10月1日").is_ok());
        assert!(check_field("date1", "2019-10-01 15:01").is_ok());
        assert!(check_field("date1", "2019-02-30").is_err());
        assert!(check_field("amount3", "¥99.00").is_ok());
        assert!(check_field("amount3", "99.5元").is_ok());
        assert!(check_field("amount3", "¥12345678901").is_err());
        assert!(check_field("phone_number1", "+86-138 0000").is_err());
        assert!(check_field("phone_number1", "+86-13800000000").is_ok());
        assert!(check_field("car_number1", "粤B12345").is_ok());
        assert!(check_field("car_number1", "粤B1234567").is_err());
        assert!(check_field("name1", "张三").is_ok());
        assert!(check_field("name1", "张三x").is_err());
        assert!(check_field("name1", "John").is_ok());
        assert!(check_field("phrase1", "已发货").is_ok());
        assert!(check_field("phrase1", "shipped").is_err());
    }

    #[test]
    fn placeholders_parsed() {
        let p = placeholders("订单号:{{character_string1.DATA}}\n状态:{{thing2.DATA}}\n");
        assert_eq!(p, vec!["character_string1", "thing2"]);
    }
}
