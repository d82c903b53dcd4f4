//! A consistent copy of the store while it keeps serving: one read transaction (a snapshot
//! that writers do not disturb) copied table by table into a fresh redb file.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

use super::tables::*;
use super::{DB_FILE, SCHEMA_VERSION, Store, StoreError, StoreResult};

/// Rows copied per write transaction of the copy, so its memory stays bounded.
const CHUNK: usize = 50_000;

macro_rules! copy_tables {
    ($src:expr, $dst:expr, $progress:expr, $($t:expr),* $(,)?) => {{
        let mut rows = 0u64;
        $( rows += copy_table(&$src, $dst, $t, $progress)?; )*
        rows
    }};
}

fn copy_table<K, V>(
    src: &redb::ReadTransaction,
    dst: &Database,
    def: TableDefinition<K, V>,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<u64>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    for<'a> K::SelfType<'a>: std::borrow::Borrow<K::SelfType<'a>>,
    for<'a> V::SelfType<'a>: std::borrow::Borrow<V::SelfType<'a>>,
{
    // Tables added without a schema bump (the email outbox) are created by their first
    // write: a file that never had one has nothing to copy.
    let table = match src.open_table(def) {
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        t => t?,
    };
    let mut iter = table.iter()?;
    let mut copied = 0u64;
    loop {
        let w = dst.begin_write()?;
        let mut n = 0;
        {
            let mut out = w.open_table(def)?;
            for row in iter.by_ref() {
                let (k, v) = row?;
                out.insert(k.value(), v.value())?;
                n += 1;
                if n == CHUNK {
                    break;
                }
            }
        }
        w.commit()?;
        copied += n as u64;
        progress(n as u64);
        if n < CHUNK {
            return Ok(copied);
        }
    }
}

impl Store {
    /// Rows in the store, for a progress bar.
    pub(in crate::store) fn row_count(&self) -> StoreResult<u64> {
        use redb::ReadableTableMetadata;
        let r = self.db()?.begin_read()?;
        let mut n = 0;
        n += r.open_table(ASSIGNMENTS)?.len()?;
        n += r.open_table(CONVERSIONS)?.len()?;
        n += r.open_table(EXPERIMENTS)?.len()?;
        n += r.open_table(USERS)?.len()?;
        Ok(n)
    }

    /// Writes a consistent snapshot of every table to `<dir>/samplit.redb`. `dir` must not
    /// hold a data file already.
    pub(in crate::store) fn backup_to(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> StoreResult<u64> {
        let io = |e: std::io::Error| StoreError::Db(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(DB_FILE);
        if path.exists() {
            return Err(StoreError::AlreadyExists(path));
        }
        let snapshot = self.db()?.begin_read()?;
        let dst = Database::create(&path).map_err(|e| StoreError::Db(e.to_string()))?;
        {
            let w = dst.begin_write()?;
            create_all(&w)?;
            w.commit()?;
        }
        let rows = every_table!(copy_tables, snapshot, &dst, progress);
        let w = dst.begin_write()?;
        {
            let mut meta = w.open_table(META)?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_le_bytes().as_slice())?;
            // The copy lives on apart from the original: its commit numbers will repeat ones
            // the original already gave out, so an export target must not mistake the two.
            meta.insert(INSTANCE_KEY, uuid::Uuid::new_v4().as_bytes().as_slice())?;
        }
        w.commit()?;
        Ok(rows)
    }
}
