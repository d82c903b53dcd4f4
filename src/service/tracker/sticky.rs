//! A bounded in-memory cache of sticky assignments in front of redb, so a returning
//! visitor's answer costs a hash lookup instead of a read transaction. Records never change
//! once written, so the cache needs no invalidation; a full shard is simply cleared.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use uuid::Uuid;

use crate::store::records::AssignmentRec;

const SHARDS: usize = 16;

/// hash -> (experiment, user, record); the key fields guard against hash collisions.
type Shard = HashMap<u64, (u128, Box<str>, AssignmentRec)>;

pub struct StickyCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

impl StickyCache {
    pub fn new(capacity: usize) -> StickyCache {
        StickyCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (capacity / SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn key(&self, exp: Uuid, user: &str) -> u64 {
        self.hasher.hash_one((exp.as_u128(), user))
    }

    pub fn get(&self, exp: Uuid, user: &str) -> Option<AssignmentRec> {
        let k = self.key(exp, user);
        let shard = self.shards[(k as usize) % SHARDS].lock().unwrap_or_else(|e| e.into_inner());
        shard.get(&k).filter(|(e, u, _)| *e == exp.as_u128() && &**u == user).map(|(_, _, r)| *r)
    }

    pub fn put(&self, exp: Uuid, user: &str, rec: AssignmentRec) {
        let k = self.key(exp, user);
        let mut shard =
            self.shards[(k as usize) % SHARDS].lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(k, (exp.as_u128(), user.into(), rec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_misses_and_bound() {
        let c = StickyCache::new(32);
        let e = Uuid::from_u128(1);
        let r = AssignmentRec { id: 9, arm: 1, weights_version: 0, propensity: 0.5, at: 0, seq: 1 };
        assert_eq!(c.get(e, "u"), None);
        c.put(e, "u", r);
        assert_eq!(c.get(e, "u"), Some(r));
        assert_eq!(c.get(Uuid::from_u128(2), "u"), None);
        for i in 0..1000 {
            c.put(e, &format!("x{i}"), r);
        }
        let total: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= 32 + SHARDS);
    }
}
