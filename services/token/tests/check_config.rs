//! `wxpush-token --check-config` builds the service without serving.

use wxpush_testkit::CheckConfig;

const TOKEN: CheckConfig = CheckConfig {
    binary: env!("CARGO_BIN_EXE_wxpush-token"),
    prefix: "WXPUSH_TOKEN",
};

#[test]
fn bad_addresses_and_missing_files_are_refused() {
    TOKEN.assert_standard();
    TOKEN.assert_missing_file_refused(
        "apps:\n  - app_id: wx1\n    secret_file: /nonexistent/wx1.secret\n",
        "/nonexistent/wx1.secret",
    );
    // Issue 19, item 9: a production binary took an inline secret.
    let (ok, out) = TOKEN.run(Some("apps:\n  - app_id: wx1\n    secret: hunter2\n"), &[]);
    assert!(!ok && out.contains("apps[wx1].secret"), "{out}");
    assert!(
        !out.contains("hunter2"),
        "the secret is never printed: {out}"
    );
    let (ok, out) = TOKEN.run(None, &[("REFRESH__MARGIN_SECS", "soon")]);
    assert!(!ok && out.contains("refresh.margin_secs"), "{out}");
}
