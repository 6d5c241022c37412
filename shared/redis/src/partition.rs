//! Key names that work on a Redis Cluster, and streams split into
//! partitions so that they spread over its shards.
//!
//! A cluster keeps each key on the shard owning its hash slot, and refuses
//! a script, transaction or pipeline whose keys live in different slots.
//! Redis hashes only the part of a key between the first `{` and the next
//! `}` (the hash tag) when there is one, so keys that must be touched
//! together carry the same tag: `wxpush:queue:{q0.0}` and
//! `wxpush:queue:{q0.0}:delayed`.
//!
//! One stream lives on one shard, so a busy stream (the queue, the event
//! stream) is split into [`Partitions`]: partition `i` of `n` gets a tag
//! whose slot lies in the `i`-th of `n` equal slot ranges. A cluster made
//! by `redis-cli --cluster create` gives each of its `m` masters an equal
//! range of slots, so with `n` a multiple of `m` every master holds the
//! same number of partitions.

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// Most partitions a stream may be split into.
pub const MAX_PARTITIONS: u16 = 1_024;

/// The hash slot of a key, as a cluster computes it.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

/// How many partitions a stream has: `1..=`[`MAX_PARTITIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partitions(u16);

impl Partitions {
    /// One partition: a single Redis.
    pub const ONE: Partitions = Partitions(1);

    /// `n` partitions, refused outside `1..=MAX_PARTITIONS`.
    pub fn new(n: u16) -> Result<Self, String> {
        if (1..=MAX_PARTITIONS).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("must be 1 to {MAX_PARTITIONS}, not {n}"))
        }
    }

    pub fn count(self) -> u16 {
        self.0
    }

    /// Every partition number.
    pub fn all(self) -> impl Iterator<Item = u16> {
        0..self.0
    }

    /// The partition of an id (a message id): the same id, the same
    /// partition, as long as the count stays.
    pub fn of(self, id: &str) -> u16 {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        (hash % u64::from(self.0)) as u16
    }

    /// The hash tag of partition `i` of a stream named by `letter`
    /// (`{q3.17}`): the first salt whose slot lies in the partition's slot
    /// range.
    pub fn tag(self, letter: char, i: u16) -> String {
        let n = u32::from(self.0);
        let (low, high) = (
            u32::from(i) * u32::from(SLOTS) / n,
            (u32::from(i) + 1) * u32::from(SLOTS) / n,
        );
        (0u32..)
            .map(|salt| format!("{{{letter}{i}.{salt}}}"))
            .find(|tag| (low..high).contains(&u32::from(slot(tag))))
            .expect("every slot range is hit by some salt")
    }
}

impl Default for Partitions {
    fn default() -> Self {
        Self::ONE
    }
}

impl<'de> serde::Deserialize<'de> for Partitions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Partitions::new(u16::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A stream's partition count in Redis differs from the configured one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{key} records {stored} partitions but backend.stream_partitions is {configured}: partition keys depend on the count, so entries in the old partitions would never be read; keep {stored}, or drain the queue and the event stream, delete {key} and start again (README, Redis Cluster)"
)]
pub struct LayoutMismatch {
    pub key: String,
    pub stored: u16,
    pub configured: u16,
}

/// Records `partitions` under `key` when nothing is recorded, and refuses
/// a different count (checked at start by every service that writes or
/// reads the stream). A Redis that cannot be asked is a warning: services
/// start without Redis.
pub async fn check_layout(
    url: &str,
    key: &str,
    partitions: Partitions,
) -> Result<(), LayoutMismatch> {
    let Ok(conn) = crate::connect(url, crate::Timeouts::Commands) else {
        return Ok(());
    };
    let recorded: Result<Option<u16>, _> = async {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(partitions.count())
            .arg("NX")
            .query_async(&mut conn.clone())
            .await?;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn.clone())
            .await
    }
    .await;
    match recorded {
        Ok(Some(stored)) if stored != partitions.count() => Err(LayoutMismatch {
            key: key.to_string(),
            stored,
            configured: partitions.count(),
        }),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(key, error = %e, "could not check the stream's partition count at start-up");
            Ok(())
        }
    }
}

/// Refuses a key prefix holding `{` or `}`: it would become the hash tag
/// of every key and put all of them in one slot.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.contains(['{', '}']) {
        return Err(format!(
            "{prefix:?} holds a brace: Redis Cluster would hash every key by it (use letters, digits, ':' or '-')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_clusters() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot("123456789"), 12_739);
        assert_eq!(slot("foo"), 12_182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }

    #[test]
    fn partitions_spread_evenly_over_the_slot_ranges() {
        for n in [1u16, 3, 8, 64] {
            let p = Partitions::new(n).unwrap();
            for i in p.all() {
                let s = u32::from(slot(&format!("wxpush:queue:{}", p.tag('q', i))));
                let n32 = u32::from(n);
                assert!(
                    s >= u32::from(i) * 16_384 / n32 && s < (u32::from(i) + 1) * 16_384 / n32,
                    "partition {i} of {n} at slot {s}"
                );
            }
        }
        let p = Partitions::new(8).unwrap();
        assert_eq!(p.tag('q', 3), p.tag('q', 3));
        assert_ne!(p.tag('q', 3), p.tag('e', 3));
    }

    #[test]
    fn ids_keep_their_partition_and_fill_them_all() {
        let p = Partitions::new(4).unwrap();
        let mut seen = [0u32; 4];
        for i in 0..4_000 {
            let id = format!("msg-{i}");
            assert_eq!(p.of(&id), p.of(&id));
            seen[p.of(&id) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(Partitions::ONE.of("anything"), 0);
        assert!(Partitions::new(0).is_err() && Partitions::new(MAX_PARTITIONS + 1).is_err());
        assert!(check_prefix("wxpush:").is_ok() && check_prefix("wx{push}:").is_err());
    }
}
