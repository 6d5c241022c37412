//! WeChat template content: the `{{name.DATA}}` placeholders that name the
//! keys a message's `data` may carry, and the type a subscribe field's name
//! encodes (`thing2` is a `thing`). Content comes from WeChat (sync) or an
//! operator's file, so the parser must accept anything without panicking.

/// The `{{name.DATA}}` placeholder names of a WeChat template content, in
/// order of appearance, without duplicates. Names are ASCII letters, digits
/// and `_`, with optional white space inside the braces; anything else
/// between braces is text, not a placeholder.
///
/// One pass: each `{{` is tried once, and what a try reads (white space, a
/// name, `.DATA`, white space, `}}`) holds no `{`, so no byte is read by
/// more than one try. (The parser it replaces searched for `}}` to the end
/// after every `{{`: 320 KB of `{` took 10 s.)
pub fn placeholders(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut from = 0;
    while let Some(offset) = content[from..].find("{{") {
        let open = from + offset;
        match placeholder_at(&content[open + 2..]) {
            Some((name, taken)) => {
                if seen.insert(name) {
                    out.push(name.to_string());
                }
                from = open + 2 + taken;
            }
            // Not a placeholder: one that starts inside it (`{{x{{a.DATA}}`,
            // `{{{a.DATA}}`) is still found.
            None => from = open + 1,
        }
    }
    out
}

/// The name of the placeholder right after a `{{`, and the bytes it takes
/// through its `}}`.
fn placeholder_at(s: &str) -> Option<(&str, usize)> {
    let body = s.trim_start();
    let name_len = body
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if name_len == 0 {
        return None;
    }
    let (name, rest) = body.split_at(name_len);
    let rest = rest
        .strip_prefix(".DATA")?
        .trim_start()
        .strip_prefix("}}")?;
    Some((name, s.len() - rest.len()))
}

/// Whether `name` can be a WeChat data key (`character_string1`).
pub fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The type of a subscribe-message field: its name without the trailing
/// digits (`thing2` → `thing`, `character_string10` → `character_string`).
pub fn field_type(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_placeholders_in_order() {
        assert_eq!(
            placeholders("a{{x1.DATA}} {{ y_2.DATA }}{{x1.DATA}}{{bad}} {{z.DATA"),
            ["x1", "y_2"]
        );
        assert_eq!(placeholders("{{x{{a.DATA}}"), ["a"]);
        assert_eq!(placeholders("{{{a.DATA}}"), ["a"]);
        assert_eq!(
            placeholders("{{a.DATA.DATA}}{{ b .DATA}}{{c.DATA }}"),
            ["c"]
        );
        assert_eq!(
            placeholders("{{.DATA}}{{a b.DATA}}{{中.DATA}}"),
            Vec::<String>::new()
        );
    }

    /// Issue 19, item 3: content of nothing but braces. The old parser
    /// rescanned to the end after every `{{` (about half an hour for 4 MiB);
    /// this one reads it once.
    #[test]
    fn a_brace_bomb_is_read_in_one_pass() {
        let bomb = "{".repeat(4 << 20);
        assert!(placeholders(&bomb).is_empty());
        let half_open = "{{a".repeat(1 << 20);
        assert!(placeholders(&half_open).is_empty());
        let many: String = (0..100_000).map(|i| format!("{{{{f{i}.DATA}}}}")).collect();
        assert_eq!(placeholders(&many).len(), 100_000);
    }

    #[test]
    fn field_type_strips_trailing_digits() {
        assert_eq!(field_type("thing2"), "thing");
        assert_eq!(field_type("character_string10"), "character_string");
        assert_eq!(field_type("phrase"), "phrase");
    }

    /// Literal text that cannot form or close a placeholder.
    fn text() -> impl Strategy<Value = String> {
        "[^{}]{0,12}"
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_content(s in any::<String>()) {
            let names = placeholders(&s);
            for n in names {
                prop_assert!(is_field_name(&n));
                let needle = format!("{n}.DATA");
                prop_assert!(s.contains(&needle));
            }
        }

        #[test]
        fn never_panics_on_brace_heavy_content(s in "[{}a.DATA中 ]{0,40}") {
            let _ = placeholders(&s);
        }

        #[test]
        fn finds_exactly_the_generated_placeholders(
            parts in proptest::collection::vec(
                (text(), "[a-z_][a-z_0-9]{0,20}", 0usize..3), 0..8),
            tail in text(),
        ) {
            let mut content = String::new();
            let mut expected: Vec<String> = Vec::new();
            for (literal, name, spaces) in &parts {
                let pad = " ".repeat(*spaces);
                content.push_str(literal);
                content.push_str(&format!("{{{{{pad}{name}.DATA{pad}}}}}"));
                if !expected.contains(name) {
                    expected.push(name.clone());
                }
            }
            content.push_str(&tail);
            prop_assert_eq!(placeholders(&content), expected);
        }
    }
}
