//! `wxpush-template --check-config` builds the service without serving.

use wxpush_testkit::CheckConfig;

const TEMPLATE: CheckConfig = CheckConfig {
    binary: env!("CARGO_BIN_EXE_wxpush-template"),
    prefix: "WXPUSH_TEMPLATE",
};

#[test]
fn bad_addresses_and_missing_files_are_refused() {
    TEMPLATE.assert_standard();
    TEMPLATE.assert_missing_file_refused(
        "templates_file: /nonexistent/templates.yaml\n",
        "/nonexistent/templates.yaml",
    );
    let (ok, out) = TEMPLATE.run(None, &[("TOKEN_ENDPOINT", "wxpush-token:50051")]);
    assert!(!ok && out.contains("token_endpoint"), "{out}");
}

#[test]
fn the_postgres_backend_needs_its_url_but_no_database() {
    let (ok, out) = TEMPLATE.run(None, &[("BACKEND__KIND", "postgres")]);
    assert!(!ok, "no postgres_url: refused");
    assert!(out.contains("backend.postgres_url"), "names the key: {out}");
    let (ok, out) = TEMPLATE.run(
        None,
        &[
            ("BACKEND__KIND", "postgres"),
            (
                "BACKEND__POSTGRES_URL",
                "postgres://wxpush:s3cret@127.0.0.1:1/wxpush",
            ),
        ],
    );
    assert!(ok, "a check dials no database: {out}");
    assert!(
        !out.contains("s3cret"),
        "the password is never printed: {out}"
    );
}
