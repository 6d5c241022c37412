//! A stream's partition count is recorded in Redis at first start, and a
//! different count refused (the partition keys depend on it: entries in the
//! old partitions would never be read again).

use wxpush_redis::Partitions;
use wxpush_redis::partition::{LayoutMismatch, check_layout};
use wxpush_testkit::RedisServer;

#[tokio::test]
async fn another_partition_count_is_refused_naming_both() {
    let redis = RedisServer::start();
    let six = Partitions::new(6).unwrap();
    let key = "wxpush:queue:partitions";
    assert_eq!(check_layout(&redis.url(), key, six).await, Ok(()));
    assert_eq!(
        check_layout(&redis.url(), key, six).await,
        Ok(()),
        "the same count again"
    );
    let refused = check_layout(&redis.url(), key, Partitions::new(8).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        LayoutMismatch {
            key: key.into(),
            stored: 6,
            configured: 8
        }
    );
    assert!(refused.to_string().contains("drain"), "{refused}");
    // A Redis that cannot be asked does not stop a start.
    assert_eq!(check_layout("redis://127.0.0.1:1/", key, six).await, Ok(()));
}
