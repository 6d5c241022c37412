//! Templates are configuration: they must not vanish with Redis. Each
//! replica keeps a last-known copy of every template it read or wrote, and
//! notices when the store lost its data (the store's epoch is gone, or
//! another replica already started a new one). Then it rebuilds what it
//! can: the templates file again, and its own copies of the rest (templates
//! created through the API), each replica adding what it knew, once per
//! loss. Meanwhile a read the store cannot answer (Redis down) is served
//! from the copy.
//!
//! Rebuilt templates start again at version 1: a caller holding an older
//! version gets VERSION_CONFLICT and re-reads, as after any other change.

use crate::store::TemplateStore;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use wxpush_proto::v1::Template;

/// Most templates a replica keeps copies of (a registry is configuration:
/// hundreds, not millions).
pub const MAX_COPIES: usize = 10_000;

/// One replica's copies, the templates file, and the epoch it last saw.
#[derive(Default)]
pub struct LastKnown {
    copies: RwLock<HashMap<String, Template>>,
    seed: RwLock<Vec<Template>>,
    seen_epoch: Mutex<Option<String>>,
    /// One rebuild at a time in this process.
    rebuilding: tokio::sync::Mutex<()>,
}

/// What a look at the store's epoch found.
#[derive(Debug, PartialEq, Eq)]
pub enum Epoch {
    /// The data this replica knows is there.
    Same,
    /// The data is gone and nobody has rebuilt yet: seed and restore.
    Lost,
    /// Another replica rebuilt after a loss: restore this replica's copies.
    Rebuilt(String),
}

impl LastKnown {
    /// Remembers a template as the store holds it.
    pub fn keep(&self, t: &Template) {
        let mut copies = self.copies.write().expect("copies lock");
        if copies.len() < MAX_COPIES || copies.contains_key(&t.key) {
            copies.insert(t.key.clone(), t.clone());
        }
    }

    /// Forgets a template (deleted).
    pub fn forget(&self, key: &str) {
        self.copies.write().expect("copies lock").remove(key);
    }

    /// The copy of one template.
    pub fn get(&self, key: &str) -> Option<Template> {
        self.copies.read().expect("copies lock").get(key).cloned()
    }

    /// The copies, or one app's, ordered by key.
    pub fn list(&self, app_id: Option<&str>) -> Vec<Template> {
        let mut all: Vec<Template> = self
            .copies
            .read()
            .expect("copies lock")
            .values()
            .filter(|t| app_id.is_none_or(|a| t.app_id == a))
            .cloned()
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The templates file's templates, to seed again after a loss.
    pub fn set_seed(&self, seed: &[Template]) {
        *self.seed.write().expect("seed lock") = seed.to_vec();
    }

    pub fn seed(&self) -> Vec<Template> {
        self.seed.read().expect("seed lock").clone()
    }

    /// Compares the store's epoch with the one this replica last saw.
    pub async fn look(
        &self,
        store: &dyn TemplateStore,
    ) -> Result<Epoch, crate::error::TemplateError> {
        let now = store.epoch().await?;
        let mut seen = self.seen_epoch.lock().expect("epoch lock");
        Ok(match (now, seen.as_deref()) {
            (None, _) => Epoch::Lost,
            (Some(now), Some(s)) if now == s => Epoch::Same,
            // First look of this process: the data it starts with is the data.
            (Some(now), None) => {
                *seen = Some(now);
                Epoch::Same
            }
            (Some(now), Some(_)) => Epoch::Rebuilt(now),
        })
    }

    /// Records the epoch after a rebuild.
    pub fn saw(&self, epoch: String) {
        *self.seen_epoch.lock().expect("epoch lock") = Some(epoch);
    }

    /// Held while rebuilding.
    pub async fn rebuild_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.rebuilding.lock().await
    }

    /// The copies that are not in the templates file.
    pub fn beyond_seed(&self) -> Vec<Template> {
        let seed = self.seed.read().expect("seed lock");
        self.list(None)
            .into_iter()
            .filter(|t| !seed.iter().any(|s| s.key == t.key))
            .collect()
    }
}

/// A new epoch value (only ever compared for equality; two replicas
/// proposing at once agree through [`TemplateStore::claim_epoch`]).
pub fn new_epoch() -> String {
    format!(
        "{:x}-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        std::process::id()
    )
}
