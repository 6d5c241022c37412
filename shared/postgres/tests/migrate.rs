//! Migrations and timestamps against a real, private PostgreSQL.

use wxpush_postgres::{Micros, Migration, Migrations, migrate::MigrateError, open};
use wxpush_testkit::PostgresServer;

const V1: Migration = Migration {
    version: 1,
    name: "things",
    sql: "CREATE TABLE things (id bigint PRIMARY KEY);",
};
const V2: Migration = Migration {
    version: 2,
    name: "things name",
    sql: "ALTER TABLE things ADD COLUMN name text; INSERT INTO things VALUES (1, 'one');",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_apply_each_migration_once() {
    let pg = PostgresServer::start();
    let pool = open(&pg.url(), "test", 8).unwrap();
    let all = Migrations {
        component: "test",
        steps: &[V1, V2],
    };
    // Eight replicas at once: the lock lets one do the work.
    let runs = (0..8).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move { all.apply(&pool).await })
    });
    let mut applied: Vec<i32> = Vec::new();
    for run in runs {
        applied.extend(run.await.unwrap().expect("migrate"));
    }
    applied.sort();
    assert_eq!(applied, [1, 2], "each version applied by exactly one run");
    assert_eq!(pg.psql("SELECT count(*) FROM things"), "1");
    assert_eq!(
        pg.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM wxpush_schema_migrations WHERE component = 'test'"),
        "1,2"
    );
    // Started again: nothing to do.
    assert!(all.apply(&pool).await.unwrap().is_empty());
    // An older binary (knows only v1) is fine with a newer database.
    let older = Migrations {
        component: "test",
        steps: &[V1],
    };
    assert!(older.apply(&pool).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_or_failing_migration_is_refused_and_leaves_nothing_half_done() {
    let pg = PostgresServer::start();
    let pool = open(&pg.url(), "test", 2).unwrap();
    Migrations {
        component: "test",
        steps: &[V1],
    }
    .apply(&pool)
    .await
    .unwrap();
    const EDITED: Migration = Migration {
        sql: "CREATE TABLE things (id integer PRIMARY KEY);",
        ..V1
    };
    let err = Migrations {
        component: "test",
        steps: &[EDITED],
    }
    .apply(&pool)
    .await
    .unwrap_err();
    assert!(
        matches!(err, MigrateError::Changed { version: 1, .. }),
        "{err}"
    );
    const BROKEN: Migration = Migration {
        version: 2,
        name: "broken",
        sql: "CREATE TABLE half (id int); SELECT no_such_function();",
    };
    let err = Migrations {
        component: "test",
        steps: &[V1, BROKEN],
    }
    .apply(&pool)
    .await
    .unwrap_err();
    assert!(
        matches!(err, MigrateError::Failed { version: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no_such_function"), "{err}");
    assert_eq!(
        pg.psql("SELECT to_regclass('half') IS NULL"),
        "t",
        "rolled back"
    );
    // The lock was released: another run goes through.
    assert_eq!(
        Migrations {
            component: "test",
            steps: &[V1, V2],
        }
        .apply(&pool)
        .await
        .unwrap(),
        [2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micros_round_trip_exactly_and_clamp_what_postgres_cannot_hold() {
    let pg = PostgresServer::start();
    let pool = open(&pg.url(), "test", 1).unwrap();
    let client = pool.get().await.unwrap();
    for us in [0, 1_764_510_000_123_456, -1, -62_135_596_800_000_000] {
        let row = client
            .query_one("SELECT $1::timestamptz", &[&Micros(us)])
            .await
            .unwrap();
        assert_eq!(row.get::<_, Micros>(0), Micros(us));
    }
    let text: String = client
        .query_one(
            "SELECT ($1::timestamptz AT TIME ZONE 'UTC')::text",
            &[&Micros(1_764_510_000_123_456)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(text, "2025-11-30 13:40:00.123456");
    // A bound from a request may be anything: clamped, not an error.
    let row = client
        .query_one(
            "SELECT $1::timestamptz > now(), $2::timestamptz < now()",
            &[&Micros(i64::MAX), &Micros(i64::MIN)],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
}

#[test]
fn a_bad_url_is_refused_without_echoing_it() {
    let err = open("postgres://user:s3cret@host:notaport/db", "test", 1).unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
