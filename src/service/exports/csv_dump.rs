//! `samplit export csv --out DIR`: the tables of the PostgreSQL export, one CSV file each.
//! Assignments and conversions are those committed when the dump starts; experiments and
//! audit entries are read just after. Each file is written under a temporary name and
//! renamed when complete, so a reader never sees half a table, and a failed run leaves none.

use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Exports;
use super::datasets::{self, Table};
use crate::error::{AppError, AppResult};
use crate::service::{Progress, ProgressEvent, blocking};
use crate::store::Store;
use crate::store::api::{AuditStore, ExperimentStore, ExportStore};
use crate::store::scan::SeqRange;

const PAGE: usize = 10_000;

struct File {
    path: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    rows: u64,
    done: bool,
}

impl File {
    fn create(dir: &Path, t: &Table) -> AppResult<File> {
        let path = dir.join(format!("{}.csv", t.name));
        let tmp = dir.join(format!(".{}.csv.partial", t.name));
        let f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let mut file = File { path, tmp, out: std::io::BufWriter::new(f), rows: 0, done: false };
        let header: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
        file.write(&format!("{}\n", header.join(",")))?;
        Ok(file)
    }

    fn write(&mut self, s: &str) -> AppResult<()> {
        self.out.write_all(s.as_bytes()).map_err(|e| io_err(&self.tmp, e))
    }

    fn row(&mut self, cells: &[datasets::Cell]) -> AppResult<()> {
        let mut line = String::new();
        super::cell::csv_line(&mut line, cells);
        self.rows += 1;
        self.write(&line)
    }

    fn finish(mut self) -> AppResult<u64> {
        self.out.flush().map_err(|e| io_err(&self.tmp, e))?;
        self.out.get_ref().sync_all().map_err(|e| io_err(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| io_err(&self.path, e))?;
        self.done = true;
        Ok(self.rows)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writing failed half-way (disk full, permissions changed): not the caller's input.
fn io_err(p: &Path, e: std::io::Error) -> AppError {
    AppError::internal(format!("writing {}: {e}", p.display()))
}

/// What `export csv` wrote: rows per table (without the header), by table name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CsvExport {
    pub out: String,
    pub tables: BTreeMap<String, u64>,
}

impl Exports {
    /// `out` is absolute: the server's working directory is not the caller's.
    pub async fn export_csv(&self, out: String, progress: &Progress) -> AppResult<CsvExport> {
        let dir = PathBuf::from(&out);
        if !dir.is_absolute() {
            return Err(AppError::validation("out", "must be an absolute path"));
        }
        let store = self.store.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ProgressEvent>();
        let work = blocking(move || {
            if dir.exists() && !dir.is_dir() {
                return Err(AppError::validation(
                    "out",
                    format!("{} is not a directory", dir.display()),
                ));
            }
            std::fs::create_dir_all(&dir).map_err(|e| {
                AppError::validation("out", format!("cannot create {}: {e}", dir.display()))
            })?;
            dump(&store, &dir, &move |v| drop(tx.send(v)))
        });
        tokio::pin!(work);
        loop {
            tokio::select! {
                Some(p) = rx.recv() => progress(p),
                result = &mut work => {
                    while let Ok(p) = rx.try_recv() {
                        progress(p);
                    }
                    return result.map(|tables| CsvExport { out, tables });
                }
            }
        }
    }
}

/// Writes every table as of the commit current when it starts.
fn dump(store: &Store, dir: &Path, progress: &Progress) -> AppResult<BTreeMap<String, u64>> {
    let upto = store.commit_seq()?;
    let range = SeqRange { after: 0, upto };
    let (na, nc, nl) = store.export_row_counts()?;
    let total = na + nc + nl;
    let mut done = 0u64;
    let report = |phase: &str, done: u64| {
        progress(ProgressEvent {
            phase: phase.to_string(),
            done: Some(done.min(total)),
            total: Some(total),
            rows: None,
        });
    };
    let exps = store.experiments()?;
    let arms: HashMap<u128, Vec<_>> = exps.iter().map(|e| (e.id.as_u128(), e.arms())).collect();
    let mut counts = BTreeMap::new();

    let mut files = [
        File::create(dir, &datasets::EXPERIMENTS)?,
        File::create(dir, &datasets::ELEMENTS)?,
        File::create(dir, &datasets::VARIANTS)?,
        File::create(dir, &datasets::ARMS)?,
    ];
    for e in &exps {
        let r = datasets::experiment_rows(e);
        files[0].row(&r.experiment)?;
        for row in &r.elements {
            files[1].row(row)?;
        }
        for row in &r.variants {
            files[2].row(row)?;
        }
        for row in &r.arms {
            files[3].row(row)?;
        }
    }
    for (f, t) in files.into_iter().zip(&datasets::ALL[..4]) {
        counts.insert(t.name.into(), f.finish()?);
    }

    let mut f = File::create(dir, &datasets::ASSIGNMENTS)?;
    let mut after = None;
    loop {
        let page = store.assignments_page(after.as_ref(), range, PAGE, u64::MAX)?;
        for ((e, u), r) in &page.rows {
            f.row(&datasets::assignment_row(*e, u, r, arms.get(e).map(Vec::as_slice)))?;
        }
        done += page.scanned;
        report("assignments", done);
        after = page.last;
        if page.done {
            break;
        }
    }
    counts.insert(datasets::ASSIGNMENTS.name.into(), f.finish()?);

    let mut f = File::create(dir, &datasets::CONVERSIONS)?;
    let mut after = None;
    loop {
        let page = store.conversions_page(after.as_ref(), range, PAGE, u64::MAX)?;
        for ((e, u, g), r) in &page.rows {
            f.row(&datasets::conversion_row(*e, u, g, r, arms.get(e).map(Vec::as_slice)))?;
        }
        done += page.scanned;
        report("conversions", done);
        after = page.last;
        if page.done {
            break;
        }
    }
    counts.insert(datasets::CONVERSIONS.name.into(), f.finish()?);

    let mut f = File::create(dir, &datasets::AUDIT_LOG)?;
    for (owner, head) in store.audit_heads()? {
        let mut after = 0;
        while after < head {
            let page = store.audit_page(owner, after, PAGE)?;
            let Some(&(last, _)) = page.last() else { break };
            for (seq, e) in page.iter().filter(|(seq, _)| *seq <= head) {
                f.row(&datasets::audit_row(owner, *seq, e))?;
            }
            done += page.len() as u64;
            report("audit_log", done);
            after = last;
        }
    }
    counts.insert(datasets::AUDIT_LOG.name.into(), f.finish()?);
    report("done", total);
    Ok(counts)
}
