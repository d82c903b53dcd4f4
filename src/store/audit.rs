//! The audit trail: one hash chain per owner. Each entry's `hash` is SHA-256 (hex) over the
//! previous entry's hash followed by the entry's canonical JSON (every field but `hash`,
//! keys sorted, no spaces, times as RFC 3339 strings as the API shows them), so anyone can
//! recompute a chain from `GET /audit`. Entries are appended inside the transaction of the
//! change they record.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::tables::{AUDIT, AUDIT_HEADS};
use super::{Store, StoreResult, corrupt};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a change says about itself; the store adds sequence, time and hashes.
#[derive(Debug, Clone)]
pub struct Draft {
    pub owner: Uuid,
    pub actor: String,
    pub action: &'static str,
    pub experiment_id: Option<Uuid>,
    pub data: Value,
}

impl Draft {
    pub fn new(owner: Uuid, actor: &str, action: &'static str) -> Draft {
        Draft { owner, actor: actor.to_string(), action, experiment_id: None, data: json!({}) }
    }

    pub fn experiment(mut self, id: Uuid) -> Draft {
        self.experiment_id = Some(id);
        self
    }

    pub fn data(mut self, data: Value) -> Draft {
        self.data = data;
        self
    }
}

/// The entry without its hash, in canonical form: serde_json's maps are sorted by key.
pub fn canonical(entry: &Value) -> String {
    let mut e = entry.clone();
    if let Some(m) = e.as_object_mut() {
        m.remove("hash");
    }
    e.to_string()
}

pub fn chain_hash(prev: &str, entry: &Value) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical(entry).as_bytes());
    hex::encode(h.finalize())
}

/// Appends `d` to its owner's chain inside `w`.
pub fn append(w: &WriteTransaction, d: &Draft, at_ms: i64) -> StoreResult<()> {
    let mut heads = w.open_table(AUDIT_HEADS)?;
    let (seq, prev) = match heads.get(d.owner.as_u128())? {
        Some(v) => {
            let head: Value = serde_json::from_slice(v.value()).map_err(|e| corrupt("audit", e))?;
            (
                head["seq"].as_u64().unwrap_or(0) + 1,
                head["hash"].as_str().unwrap_or(GENESIS).to_string(),
            )
        }
        None => (1, GENESIS.to_string()),
    };
    let mut entry = json!({
        "seq": seq,
        "at": crate::engine::time::rfc3339(at_ms),
        "actor": d.actor,
        "action": d.action,
        "experiment_id": d.experiment_id,
        "data": d.data,
        "prev_hash": prev,
    });
    let hash = chain_hash(&prev, &entry);
    entry["hash"] = json!(hash);
    w.open_table(AUDIT)?.insert((d.owner.as_u128(), seq), entry.to_string().as_bytes())?;
    heads.insert(d.owner.as_u128(), json!({"seq": seq, "hash": hash}).to_string().as_bytes())?;
    Ok(())
}

/// The first entry of a chain that does not verify.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    pub owner: Uuid,
    pub seq: u64,
    pub reason: String,
}

impl Store {
    /// An owner's entries, oldest first, optionally for one experiment: `(page, total, head)`.
    pub(in crate::store) fn audit_entries(
        &self,
        owner: Uuid,
        experiment: Option<Uuid>,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<Value>, usize, String)> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(AUDIT)?;
        let id = owner.as_u128();
        let mut page = Vec::new();
        let Some(want) = experiment.map(|e| e.to_string()) else {
            // A chain's sequence numbers run 1, 2, 3…: a page is one range read, however long
            // the chain has grown (adaptive experiments add an entry per weight update).
            let (total, head) = match r.open_table(AUDIT_HEADS)?.get(id)? {
                Some(v) => {
                    let h: Value =
                        serde_json::from_slice(v.value()).map_err(|e| corrupt("audit", e))?;
                    (
                        h["seq"].as_u64().unwrap_or(0),
                        h["hash"].as_str().unwrap_or(GENESIS).to_string(),
                    )
                }
                None => (0, GENESIS.to_string()),
            };
            let first = (offset as u64).saturating_add(1);
            for row in t.range((id, first)..=(id, u64::MAX))?.take(limit) {
                let (_, v) = row?;
                page.push(serde_json::from_slice(v.value()).map_err(|e| corrupt("audit", e))?);
            }
            return Ok((page, usize::try_from(total).unwrap_or(usize::MAX), head));
        };
        let mut total = 0;
        let mut head = GENESIS.to_string();
        for row in t.range((id, 0)..=(id, u64::MAX))? {
            let (_, v) = row?;
            let e: Value = serde_json::from_slice(v.value()).map_err(|e| corrupt("audit", e))?;
            head = e["hash"].as_str().unwrap_or("").to_string();
            if e["experiment_id"].as_str() != Some(want.as_str()) {
                continue;
            }
            if total >= offset && page.len() < limit {
                page.push(e);
            }
            total += 1;
        }
        Ok((page, total, head))
    }

    /// Recomputes every chain; returns how many entries were checked and the first broken
    /// entry of each broken chain.
    pub(in crate::store) fn verify_audit(&self) -> StoreResult<(u64, Vec<Broken>)> {
        self.verify_chains(None)
    }

    /// Recomputes one owner's chain, as `verify_audit` does every chain.
    pub(in crate::store) fn verify_audit_of(&self, owner: Uuid) -> StoreResult<(u64, Vec<Broken>)> {
        self.verify_chains(Some(owner.as_u128()))
    }

    fn verify_chains(&self, only: Option<u128>) -> StoreResult<(u64, Vec<Broken>)> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(AUDIT)?;
        let heads = r.open_table(AUDIT_HEADS)?;
        let mut checked = 0;
        let mut broken = Vec::new();
        let mut current: Option<(u128, String, u64, bool)> = None;
        let rows = match only {
            Some(o) => t.range((o, 0)..=(o, u64::MAX))?,
            None => t.iter()?,
        };
        for row in rows {
            let (k, v) = row?;
            let (owner, seq) = k.value();
            if current.as_ref().is_none_or(|c| c.0 != owner) {
                current = Some((owner, GENESIS.to_string(), 0, false));
            }
            let Some((_, prev, last_seq, failed)) = current.as_mut() else { continue };
            checked += 1;
            if *failed {
                continue;
            }
            let mut fail = |reason: String| {
                broken.push(Broken { owner: Uuid::from_u128(owner), seq, reason });
            };
            let e: Value = match serde_json::from_slice(v.value()) {
                Ok(e) => e,
                Err(err) => {
                    fail(format!("not JSON: {err}"));
                    *failed = true;
                    continue;
                }
            };
            if seq != *last_seq + 1 || e["seq"].as_u64() != Some(seq) {
                fail(format!("sequence gap: expected {}, found {seq}", *last_seq + 1));
                *failed = true;
            } else if e["prev_hash"].as_str() != Some(prev.as_str()) {
                fail("prev_hash does not match the previous entry".into());
                *failed = true;
            } else if e["hash"].as_str() != Some(chain_hash(prev, &e).as_str()) {
                fail("hash does not match the entry's content".into());
                *failed = true;
            }
            *last_seq = seq;
            *prev = e["hash"].as_str().unwrap_or("").to_string();
        }
        // A chain whose head record disagrees with its last entry lost entries at the end.
        let head_rows = match only {
            Some(o) => heads.range(o..=o)?,
            None => heads.iter()?,
        };
        for row in head_rows {
            let (k, v) = row?;
            let owner = Uuid::from_u128(k.value());
            let head: Value = serde_json::from_slice(v.value()).map_err(|e| corrupt("audit", e))?;
            let seq = head["seq"].as_u64().unwrap_or(0);
            let exists = t.get((k.value(), seq))?.is_some();
            if !exists && !broken.iter().any(|b| b.owner == owner) {
                broken.push(Broken { owner, seq, reason: "the newest entry is missing".into() });
            }
        }
        Ok((checked, broken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain depends on sorted keys; a dependency turning on serde_json's
    /// `preserve_order` would silently change every hash, so this guards it.
    #[test]
    fn canonical_form_sorts_keys_and_drops_the_hash() {
        let e = json!({"seq": 1, "action": "x", "hash": "h", "data": {"b": 1, "a": 0.1}});
        assert_eq!(canonical(&e), r#"{"action":"x","data":{"a":0.1,"b":1},"seq":1}"#);
        let v: Value = serde_json::from_str(r#"{"w":0.010101135190918473}"#).unwrap();
        assert_eq!(v.to_string(), r#"{"w":0.010101135190918473}"#, "floats round-trip exactly");
    }
}
