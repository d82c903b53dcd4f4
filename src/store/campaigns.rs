//! Campaign waves: what each wave sent (its links, which click tokens point into by index)
//! and how many recipients each arm got. The recipients' assignments themselves are
//! ordinary sticky assignments, written by the group-commit writer.
//!
//! Wave numbers are given out by `insert_wave`, which runs on the writer thread
//! (`Writer::exec`), so two waves sent at once never share a number. That assumes one
//! process holds the store, as the writer does.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tables::CAMPAIGN_WAVES;
use super::{Store, StoreResult, corrupt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveRec {
    /// 1 for the first wave of an experiment.
    pub wave: u32,
    pub at: i64,
    /// The links as given; a click token names one by its index.
    pub links: Vec<String>,
    /// Recipients per arm, in arm order.
    pub arms: Vec<u64>,
    /// Recipients who had not been sent to before.
    pub new_recipients: u64,
}

/// The fields of a wave that the caller decides; the number is the store's.
#[derive(Debug, Clone)]
pub struct NewWave {
    pub at: i64,
    pub links: Vec<String>,
    pub arms: Vec<u64>,
    pub new_recipients: u64,
}

fn key(exp: Uuid, wave: u32) -> (u128, u32) {
    (exp.as_u128(), wave)
}

/// Stores the next wave of `exp` durably and returns it with its number. Call it on the
/// writer thread only (see the module note).
pub fn insert_wave(store: &Store, exp: Uuid, new: NewWave) -> StoreResult<WaveRec> {
    let w = store.db()?.begin_write()?;
    let rec = {
        let mut t = w.open_table(CAMPAIGN_WAVES)?;
        let last = t.range(key(exp, 0)..=key(exp, u32::MAX))?.next_back().transpose()?;
        let wave = last.map(|(k, _)| k.value().1).unwrap_or(0).saturating_add(1);
        let rec = WaveRec {
            wave,
            at: new.at,
            links: new.links,
            arms: new.arms,
            new_recipients: new.new_recipients,
        };
        let bytes = serde_json::to_vec(&rec).expect("records serialize");
        t.insert(key(exp, wave), bytes.as_slice())?;
        rec
    };
    w.commit()?;
    Ok(rec)
}

/// What the campaign service reads.
pub trait CampaignStore {
    fn wave(&self, exp: Uuid, wave: u32) -> StoreResult<Option<WaveRec>>;
    /// Every wave of `exp`, oldest first.
    fn waves(&self, exp: Uuid) -> StoreResult<Vec<WaveRec>>;
}

impl CampaignStore for Store {
    fn wave(&self, exp: Uuid, wave: u32) -> StoreResult<Option<WaveRec>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(CAMPAIGN_WAVES)?;
        t.get(key(exp, wave))?
            .map(|v| serde_json::from_slice(v.value()).map_err(|e| corrupt("campaign_waves", e)))
            .transpose()
    }

    fn waves(&self, exp: Uuid) -> StoreResult<Vec<WaveRec>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(CAMPAIGN_WAVES)?;
        let mut out = Vec::new();
        for row in t.range(key(exp, 0)..=key(exp, u32::MAX))? {
            let (_, v) = row?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| corrupt("campaign_waves", e))?);
        }
        Ok(out)
    }
}
