//! Paged reads of the append-only tables for exports: each call opens its own snapshot,
//! reads one page after a cursor key and returns where to go on. Records never change once
//! written, so pages from different snapshots still add up to one consistent export as long
//! as the caller bounds them by a `commit_seq` it read first.

use redb::{ReadableDatabase, ReadableTable};
use std::ops::Bound;

use super::records::{AssignmentRec, ConversionRec};
use super::tables::{ASSIGNMENTS, AUDIT, AUDIT_HEADS, CONVERSIONS};
use super::{Store, StoreResult, corrupt};

/// Which commits a page keeps: `after < seq <= upto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub after: u64,
    pub upto: u64,
}

impl SeqRange {
    pub fn contains(&self, seq: u64) -> bool {
        seq > self.after && seq <= self.upto
    }
}

/// One page: the rows kept, the last key looked at (the cursor of the next page; None when
/// nothing was left), and how many rows were looked at.
#[derive(Debug)]
pub struct Page<K, R> {
    pub rows: Vec<(K, R)>,
    pub last: Option<K>,
    pub scanned: u64,
    pub done: bool,
}

pub type AssignmentKey = (u128, String);
pub type ConversionKey = (u128, String, String);

impl Store {
    /// Up to `max_rows` assignments in `range` after `after`, looking at no more than
    /// `max_scan` rows so a page of a mostly-exported table still returns promptly.
    pub(in crate::store) fn assignments_page(
        &self,
        after: Option<&AssignmentKey>,
        range: SeqRange,
        max_rows: usize,
        max_scan: u64,
    ) -> StoreResult<Page<AssignmentKey, AssignmentRec>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(ASSIGNMENTS)?;
        let lower = match after {
            Some((e, u)) => Bound::Excluded((*e, u.as_str())),
            None => Bound::Unbounded,
        };
        let mut page = Page { rows: Vec::new(), last: None, scanned: 0, done: true };
        for row in t.range::<(u128, &str)>((lower, Bound::Unbounded))? {
            let (k, v) = row?;
            let (exp, user) = k.value();
            let rec = super::records::decode_assignment(exp, user, v.value())
                .map_err(|e| corrupt("assignments", e))?;
            page.scanned += 1;
            page.last = Some((exp, user.to_string()));
            if range.contains(rec.seq) {
                page.rows.push(((exp, user.to_string()), rec));
            }
            if page.rows.len() >= max_rows || page.scanned >= max_scan {
                page.done = false;
                break;
            }
        }
        Ok(page)
    }

    /// As `assignments_page`, for conversions of every goal.
    pub(in crate::store) fn conversions_page(
        &self,
        after: Option<&ConversionKey>,
        range: SeqRange,
        max_rows: usize,
        max_scan: u64,
    ) -> StoreResult<Page<ConversionKey, ConversionRec>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(CONVERSIONS)?;
        let lower = match after {
            Some((e, u, g)) => Bound::Excluded((*e, u.as_str(), g.as_str())),
            None => Bound::Unbounded,
        };
        let mut page = Page { rows: Vec::new(), last: None, scanned: 0, done: true };
        for row in t.range::<(u128, &str, &str)>((lower, Bound::Unbounded))? {
            let (k, v) = row?;
            let (exp, user, goal) = k.value();
            let rec: ConversionRec =
                postcard::from_bytes(v.value()).map_err(|e| corrupt("conversions", e))?;
            page.scanned += 1;
            let key = (exp, user.to_string(), goal.to_string());
            if range.contains(rec.seq) {
                page.rows.push((key.clone(), rec));
            }
            page.last = Some(key);
            if page.rows.len() >= max_rows || page.scanned >= max_scan {
                page.done = false;
                break;
            }
        }
        Ok(page)
    }

    /// Every audit chain: `(owner, seq of its newest entry)`.
    pub(in crate::store) fn audit_heads(&self) -> StoreResult<Vec<(u128, u64)>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(AUDIT_HEADS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let head: serde_json::Value =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("audit", e))?;
            out.push((k.value(), head["seq"].as_u64().unwrap_or(0)));
        }
        Ok(out)
    }

    /// Up to `max_rows` entries of `owner`'s chain after `after_seq`, as stored.
    pub(in crate::store) fn audit_page(
        &self,
        owner: u128,
        after_seq: u64,
        max_rows: usize,
    ) -> StoreResult<Vec<(u64, serde_json::Value)>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(AUDIT)?;
        let mut out = Vec::new();
        if after_seq == u64::MAX {
            return Ok(out);
        }
        for row in t.range((owner, after_seq + 1)..=(owner, u64::MAX))? {
            let (k, v) = row?;
            let entry = serde_json::from_slice(v.value()).map_err(|e| corrupt("audit", e))?;
            out.push((k.value().1, entry));
            if out.len() >= max_rows {
                break;
            }
        }
        Ok(out)
    }

    /// Rows in the tables an export walks, for its progress bar.
    pub(in crate::store) fn export_row_counts(&self) -> StoreResult<(u64, u64, u64)> {
        use redb::ReadableTableMetadata;
        let r = self.db()?.begin_read()?;
        Ok((
            r.open_table(ASSIGNMENTS)?.len()?,
            r.open_table(CONVERSIONS)?.len()?,
            r.open_table(AUDIT)?.len()?,
        ))
    }
}
