//! Page tokens come back from callers: `QueryLogs` and `ListDeadLetters`
//! decode any string to a cursor or nothing, never a panic, and a cursor
//! they accept encodes back to a token that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &str| {
    if let Some(c) = wxpush_logquery::filter::decode_cursor(token) {
        let again = wxpush_logquery::filter::encode_cursor(&c);
        assert_eq!(wxpush_logquery::filter::decode_cursor(&again), Some(c));
    }
    let _ = wxpush_delivery::queue::decode_cursor(token);
});
