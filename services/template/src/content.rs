//! WeChat template content: the `{{name.DATA}}` placeholders that name the
//! keys a message's `data` may carry, and the type a subscribe field's name
//! encodes (`thing2` is a `thing`). Content comes from WeChat (sync) or an
//! operator's file, so the parser must accept anything without panicking.

/// The `{{name.DATA}}` placeholder names of a WeChat template content, in
/// order of appearance, without duplicates. Names are ASCII letters, digits
/// and `_`; anything else between braces is text, not a placeholder.
pub fn placeholders(content: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        match inner.strip_suffix(".DATA") {
            Some(name) if is_field_name(name) => {
                if !out.iter().any(|n| n == name) {
                    out.push(name.to_string());
                }
                rest = &after[end + 2..];
            }
            // Not a placeholder: resume right after this `{{` so a
            // placeholder that starts inside it (`{{x{{a.DATA}}`) is found.
            _ => rest = after,
        }
    }
    out
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
        assert_eq!(
            placeholders("{{.DATA}}{{a b.DATA}}{{中.DATA}}"),
            Vec::<String>::new()
        );
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
