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
    TEMPLATE.assert_postgres_needs_url_but_no_database();
}
