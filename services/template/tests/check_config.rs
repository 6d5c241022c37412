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
