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

#[test]
fn cluster_settings_and_the_status_ttl_are_checked_without_dialling() {
    // A cluster URL is checked, not dialled; partitions and the status TTL
    // are refused outside their ranges, naming the key.
    let (ok, out) = DELIVERY.run(
        None,
        &[
            ("BACKEND__KIND", "postgres"),
            ("BACKEND__POSTGRES_URL", "postgres://u@127.0.0.1:1/db"),
            (
                "BACKEND__REDIS_URL",
                "redis-cluster://127.0.0.1:1,127.0.0.1:2",
            ),
            ("BACKEND__STREAM_PARTITIONS", "6"),
        ],
    );
    assert!(ok, "{out}");
    for (key, value, named) in [
        (
            "BACKEND__STREAM_PARTITIONS",
            "0",
            "backend.stream_partitions",
        ),
        (
            "BACKEND__STREAM_PARTITIONS",
            "1025",
            "backend.stream_partitions",
        ),
        ("BACKEND__KEY_PREFIX", "wx{push}:", "backend.key_prefix"),
        ("QUEUE__STATUS_TTL_SECS", "59", "queue.status_ttl_secs"),
        ("BACKEND__REDIS_URL", "redis-cluster://h:1/3", "Redis URL"),
    ] {
        let (ok, out) = DELIVERY.run(None, &[("BACKEND__KIND", "redis"), (key, value)]);
        assert!(!ok && out.contains(named), "{key}={value}: {out}");
    }
}
