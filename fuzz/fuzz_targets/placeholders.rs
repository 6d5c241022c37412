//! The `{{name.DATA}}` parser over any content: no panic, every name it
//! returns is a field name that occurs in the content, and it is one pass
//! (a quadratic parser shows up as libFuzzer's slow-unit report).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxpush_template::content::{is_field_name, placeholders};

fuzz_target!(|content: &str| {
    for name in placeholders(content) {
        assert!(is_field_name(&name));
        assert!(content.contains(&format!("{name}.DATA")));
    }
});
