//! `wxpush-delivery --check-config` builds the service without serving.

use wxpush_testkit::CheckConfig;

const DELIVERY: CheckConfig = CheckConfig {
    binary: env!("CARGO_BIN_EXE_wxpush-delivery"),
    prefix: "WXPUSH_DELIVERY",
};

#[test]
fn bad_addresses_and_missing_files_are_refused() {
    DELIVERY.assert_standard();
    let (ok, out) = DELIVERY.run(None, &[("TEMPLATE_ENDPOINT", "foo")]);
    assert!(!ok && out.contains("template_endpoint"), "{out}");
    // Redis is dialled lazily: a check needs no Redis, only a Redis URL.
    let (ok, out) = DELIVERY.run(
        None,
        &[
            ("BACKEND__KIND", "redis"),
            ("BACKEND__REDIS_URL", "redis://127.0.0.1:1/"),
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = DELIVERY.run(
        None,
        &[
            ("BACKEND__KIND", "redis"),
            ("BACKEND__REDIS_URL", "http://x"),
        ],
    );
    assert!(!ok && out.contains("Redis URL"), "{out}");
}

#[test]
fn the_postgres_backend_needs_its_url_but_no_database() {
    DELIVERY.assert_postgres_needs_url_but_no_database();
}
