//! The in-memory catalog: every experiment definition and every site key, loaded at start
//! and updated on each write, so the tracker never scans the store. Each entry also holds
//! the pre-rendered JSON of its arms, so an assignment answer is a few string copies.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use crate::engine::allocator::{self, Weights};
use crate::engine::model::{Allocation, ExpType, Experiment, Status};
use crate::store::api::{ExperimentStore, UserStore};
use crate::store::writer::ExpMeta;
use crate::store::{Store, StoreResult};

pub struct Entry {
    pub exp: Experiment,
    /// The fixed split's weights (version 0).
    pub fixed: Arc<Weights>,
    /// Each arm's `[AssignedVariant]`, rendered once.
    pub arm_json: Vec<String>,
    pub goal_json: String,
}

impl Entry {
    pub fn new(exp: Experiment) -> Entry {
        let arm_json = (0..exp.arm_count())
            .map(|a| {
                serde_json::to_string(&super::tracker::assigned_variants(&exp, a))
                    .unwrap_or_else(|_| "[]".into())
            })
            .collect();
        let goal_json = serde_json::to_string(&exp.goal).unwrap_or_else(|_| "null".into());
        let fixed = Arc::new(Weights { version: 0, w: exp.fixed_weights() });
        Entry { exp, fixed, arm_json, goal_json }
    }

    pub fn meta(&self) -> ExpMeta {
        let k = self.exp.arm_count();
        let adaptive = self.exp.allocation != Allocation::Fixed;
        let policy = if self.exp.allocation == Allocation::FastLearning {
            allocator::Policy::TopTwo
        } else {
            allocator::Policy::Thompson
        };
        ExpMeta {
            owner: self.exp.owner,
            arms: k,
            adaptive,
            policy,
            floor: self.exp.floor,
            burn_in: self.exp.burn_in,
            initial_weights: if adaptive { vec![1.0 / k as f64; k] } else { self.fixed.w.clone() },
        }
    }

    pub fn visible(&self) -> bool {
        self.exp.archived_at.is_none()
    }

    pub fn serving(&self) -> bool {
        self.exp.status == Status::Running && self.exp.archived_at.is_none()
    }
}

#[derive(Default)]
pub struct Catalog {
    experiments: RwLock<HashMap<Uuid, Arc<Entry>>>,
    /// site key -> owner
    sites: RwLock<HashMap<String, Uuid>>,
    /// owner -> running page experiments, for assignment by page URL and the site script;
    /// campaigns are left out: their recipients come in waves, not from pages
    by_owner: RwLock<HashMap<Uuid, Vec<Arc<Entry>>>>,
}

impl Catalog {
    /// The caller's experiment, or 404 (also for another user's).
    pub fn owned(
        &self,
        who: &super::accounts::Principal,
        id: Uuid,
    ) -> crate::error::AppResult<Arc<Entry>> {
        self.get(id).filter(|e| e.exp.owner == who.id()).ok_or_else(super::experiments::not_found)
    }

    pub fn load(&self, store: &Store) -> StoreResult<()> {
        for exp in store.experiments()? {
            self.put(exp);
        }
        let keys = store.site_keys()?;
        write(&self.sites).extend(keys);
        Ok(())
    }

    pub fn put(&self, exp: Experiment) -> Arc<Entry> {
        let owner = exp.owner;
        let entry = Arc::new(Entry::new(exp));
        write(&self.experiments).insert(entry.exp.id, entry.clone());
        self.reindex(owner);
        entry
    }

    pub fn remove(&self, id: Uuid) {
        let owner = write(&self.experiments).remove(&id).map(|e| e.exp.owner);
        if let Some(owner) = owner {
            self.reindex(owner);
        }
    }

    fn reindex(&self, owner: Uuid) {
        let mut running: Vec<Arc<Entry>> = read(&self.experiments)
            .values()
            .filter(|e| e.exp.owner == owner && e.serving() && e.exp.exp_type != ExpType::Campaign)
            .cloned()
            .collect();
        running.sort_by_key(|e| e.exp.created_at);
        write(&self.by_owner).insert(owner, running);
    }

    pub fn get(&self, id: Uuid) -> Option<Arc<Entry>> {
        read(&self.experiments).get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Entry>> {
        read(&self.experiments).values().cloned().collect()
    }

    pub fn owned_by(&self, owner: Uuid) -> Vec<Arc<Entry>> {
        let mut v: Vec<Arc<Entry>> =
            read(&self.experiments).values().filter(|e| e.exp.owner == owner).cloned().collect();
        v.sort_by(|a, b| b.exp.created_at.cmp(&a.exp.created_at).then(a.exp.id.cmp(&b.exp.id)));
        v
    }

    pub fn running_for(&self, owner: Uuid) -> Vec<Arc<Entry>> {
        read(&self.by_owner).get(&owner).cloned().unwrap_or_default()
    }

    pub fn add_site(&self, key: String, owner: Uuid) {
        write(&self.sites).insert(key, owner);
    }

    /// A removed user's site key: the tracker stops answering for it.
    pub fn remove_site(&self, key: &str) {
        write(&self.sites).remove(key);
    }

    pub fn site_owner(&self, key: &str) -> Option<Uuid> {
        read(&self.sites).get(key).copied()
    }
}

// A panic while a guard was held leaves the maps as they were after the last whole
// insert or remove (each is one call), so the data is usable: recover the guard rather
// than skip the write, which would leave the catalog silently out of date with the store.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
