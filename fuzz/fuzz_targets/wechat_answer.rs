//! A message send's answer as WeChat (or anything answering in its place)
//! may write it: a receipt or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    if let Ok(receipt) = wxpush_wechat::parse_send_answer(body) {
        assert!(receipt.msgid.len() <= body.len());
    }
});
