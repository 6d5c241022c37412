//! WeChat's subscribe field rules over any field name and value: an
//! answer, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (name, value) = input;
    let _ = wxpush_template::rules::check_field(name, value);
});
