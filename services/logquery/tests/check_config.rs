//! `wxpush-logquery --check-config` builds the service without serving.

use wxpush_testkit::CheckConfig;

const LOGQUERY: CheckConfig = CheckConfig {
    binary: env!("CARGO_BIN_EXE_wxpush-logquery"),
    prefix: "WXPUSH_LOGQUERY",
};

#[test]
fn bad_addresses_and_missing_files_are_refused() {
    LOGQUERY.assert_standard();
    let (ok, out) = LOGQUERY.run(None, &[("BACKEND__KIND", "redis")]);
    assert!(ok, "a check needs no Redis: {out}");
}

#[test]
fn the_postgres_backend_needs_its_url_but_no_database() {
    LOGQUERY.assert_postgres_needs_url_but_no_database();
}
