//! Where the data file's bytes go: per table, what its entries hold, what the B-tree
//! around them costs, and the pages the file keeps but no table uses. `samplit usage`
//! prints it; the disk bench reports bytes per assignment from it.

use super::tables::*;
use super::{Store, StoreResult};
use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition, TableHandle};

/// One table's share of the file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableUsage {
    pub table: String,
    pub entries: u64,
    /// Bytes of keys and values as stored in leaves.
    pub stored_bytes: u64,
    /// Per-entry offsets, page headers and branch keys.
    pub metadata_bytes: u64,
    /// Unused space inside this table's pages (partly filled leaves and branches).
    pub fragmented_bytes: u64,
    pub leaf_pages: u64,
    pub branch_pages: u64,
}

impl TableUsage {
    /// Every byte of the table's pages.
    pub fn total_bytes(&self) -> u64 {
        self.stored_bytes + self.metadata_bytes + self.fragmented_bytes
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Usage {
    pub file_bytes: u64,
    pub page_size: u64,
    /// Pages some table or the database's own bookkeeping uses.
    pub allocated_bytes: u64,
    pub tables: Vec<TableUsage>,
}

impl Usage {
    pub fn table(&self, name: &str) -> Option<&TableUsage> {
        self.tables.iter().find(|t| t.table == name)
    }

    /// Bytes of the file outside every table: free pages the file has not given back,
    /// and the database's own trees (the free list, the table directory).
    pub fn outside_tables(&self) -> u64 {
        let tables: u64 = self.tables.iter().map(TableUsage::total_bytes).sum();
        self.file_bytes.saturating_sub(tables)
    }
}

impl Store {
    /// Reads every table's statistics in one read transaction (cheap: it walks branch
    /// pages, not entries).
    pub fn usage(&self) -> StoreResult<Usage> {
        let db = self.db()?;
        let r = db.begin_read()?;
        let mut tables = Vec::new();
        macro_rules! each {
            ($($def:expr),* $(,)?) => {$( tables.push(table_usage(&r, $def)?); )*};
        }
        every_table!(each);
        drop(r);
        // The database-wide figures need a write transaction; it is aborted at once.
        let w = db.begin_write()?;
        let stats = w.stats()?;
        w.abort()?;
        let file_bytes = std::fs::metadata(self.path()).map(|m| m.len()).unwrap_or(0);
        Ok(Usage {
            file_bytes,
            page_size: stats.page_size() as u64,
            allocated_bytes: stats.allocated_pages() * stats.page_size() as u64,
            tables,
        })
    }
}

fn table_usage<K: redb::Key + 'static, V: redb::Value + 'static>(
    r: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> StoreResult<TableUsage> {
    let name = def.name().to_string();
    let t = match r.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Ok(TableUsage {
                table: name,
                entries: 0,
                stored_bytes: 0,
                metadata_bytes: 0,
                fragmented_bytes: 0,
                leaf_pages: 0,
                branch_pages: 0,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let s = t.stats()?;
    Ok(TableUsage {
        table: name,
        entries: t.len()?,
        stored_bytes: s.stored_bytes(),
        metadata_bytes: s.metadata_bytes(),
        fragmented_bytes: s.fragmented_bytes(),
        leaf_pages: s.leaf_pages(),
        branch_pages: s.branch_pages(),
    })
}
