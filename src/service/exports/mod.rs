//! Exports of one experiment: every assignment with its conversion, one row each, as CSV or as
//! an XLSX workbook, streamed from a read snapshot in chunks so a million rows never sit in
//! memory; and the per-arm summary.
//!
//! Both formats build their rows as [`Cell`]s in one place, so the columns cannot drift apart.

use super::analytics::{Analysis, Analytics};
use std::io::{self, Write};
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::accounts::Principal;
use super::catalog::{Catalog, Entry};
use crate::store::api::RecordStore;
use cell::{Cell, csv_field, csv_line};
use xlsx::XlsxWriter;

pub mod cell;
pub mod csv_dump;
pub mod datasets;
pub mod pg_export;
pub mod xlsx;
pub mod zip;
use crate::engine::model::Arm;
use crate::error::{AppError, AppResult};
use crate::store::Store;
use crate::store::records::{AssignmentRec, ConversionRec};

const CHUNK_BYTES: usize = 64 * 1024;

/// The body of a streamed export: chunks of about 64 KB, or the error that cut it short.
pub type Chunks = mpsc::Receiver<io::Result<Vec<u8>>>;

const SUMMARY_HEADER: [&str; 12] = [
    "arm_id",
    "arm",
    "allocations",
    "conversions",
    "conversion_rate",
    "adjusted_conversion_rate",
    "ci_low",
    "ci_high",
    "prob_best",
    "expected_loss",
    "lift_vs_control",
    "traffic_weight",
];

/// The columns of the assignments export, from the experiment's definition.
struct Assignments {
    entry: Arc<Entry>,
    arms: Vec<Arm>,
}

impl Assignments {
    fn new(entry: Arc<Entry>) -> Self {
        let arms = entry.exp.arms();
        Assignments { entry, arms }
    }

    fn header(&self) -> Vec<String> {
        let mut h: Vec<String> =
            ["user_id", "assignment_id", "assigned_at", "arm_id", "arm"].map(String::from).into();
        h.extend(self.entry.exp.elements.iter().map(|e| format!("variant:{}", e.name)));
        h.extend(
            ["weights_version", "propensity", "converted", "converted_at", "value"]
                .map(String::from),
        );
        h
    }

    fn row<'a>(
        &'a self,
        user: &'a str,
        rec: &AssignmentRec,
        conv: Option<&ConversionRec>,
    ) -> Vec<Cell<'a>> {
        let elements = &self.entry.exp.elements;
        let mut row = Vec::with_capacity(10 + elements.len());
        row.push(Cell::text(user));
        row.push(Cell::text(Uuid::from_u128(rec.id).to_string()));
        row.push(Cell::Time(rec.at));
        // An arm index past the end (the definition cannot shrink, but be safe) reads as the
        // last arm, as the counters do.
        let arm = if rec.excluded() {
            None
        } else {
            self.arms.get(usize::from(rec.arm)).or(self.arms.last())
        };
        match arm {
            Some(arm) => {
                row.push(Cell::text(arm.id.as_str()));
                row.push(Cell::text(arm.name.as_str()));
                for (&v, e) in arm.variant_indices.iter().zip(elements) {
                    row.push(e.variants.get(v).map_or(Cell::Empty, |v| Cell::text(&v.name)));
                }
            }
            None => {
                row.push(Cell::text("excluded"));
                row.push(Cell::text("excluded"));
                row.extend(elements.iter().map(|_| Cell::Empty));
            }
        }
        row.push(Cell::Int(i64::from(rec.weights_version)));
        row.push(Cell::Number(rec.propensity));
        row.push(Cell::Bool(conv.is_some()));
        row.push(conv.map_or(Cell::Empty, |c| Cell::Time(c.at)));
        row.push(conv.and_then(|c| c.value).map_or(Cell::Empty, Cell::Number));
        row
    }
}

/// Calls `f` for every assignment of `exp` with its primary conversion, stopping at the first
/// error; a store error becomes an I/O error of the stream.
fn each_assignment(
    store: &Store,
    exp: Uuid,
    mut f: impl FnMut(&str, &AssignmentRec, Option<&ConversionRec>) -> io::Result<()>,
) -> io::Result<()> {
    let mut failed = None;
    store
        .scan_assignments(exp, &mut |user, rec, conv| match f(user, rec, conv) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })
        .map_err(|e| io::Error::other(e.to_string()))?;
    failed.map_or(Ok(()), Err)
}

/// The per-arm summary rows (a handful), from the analytics.
fn summary_rows(a: &Analytics) -> Vec<Vec<Cell<'static>>> {
    let num = |v: Option<f64>| v.map_or(Cell::Empty, Cell::Number);
    let int = |n: u64| i64::try_from(n).map_or(Cell::Number(n as f64), Cell::Int);
    a.arms
        .iter()
        .map(|arm| {
            vec![
                Cell::text(arm.arm_id.clone()),
                Cell::text(arm.name.clone()),
                int(arm.allocations),
                int(arm.conversions),
                Cell::Number(arm.conversion_rate),
                Cell::Number(arm.adjusted_conversion_rate),
                Cell::Number(arm.credible_interval[0]),
                Cell::Number(arm.credible_interval[1]),
                Cell::Number(arm.prob_best),
                Cell::Number(arm.expected_loss),
                num(arm.lift_vs_control),
                Cell::Number(arm.traffic_weight),
            ]
        })
        .collect()
}

fn summary_sheet<W: Write>(book: &mut XlsxWriter<W>, rows: &[Vec<Cell>]) -> io::Result<()> {
    book.begin_sheet("summary", &SUMMARY_HEADER)?;
    for row in rows {
        book.row(row)?;
    }
    book.end_sheet()
}

/// The blocking end of a streamed body: gathers bytes into 64 KB chunks for the response and
/// fails once the client has gone, so the export stops reading the store.
struct ChunkSender {
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "export download abandoned"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() { Ok(()) } else { self.send() }
    }
}

/// Runs `write` on a blocking thread, its output streamed through the returned channel.
fn stream(write: impl FnOnce(&mut ChunkSender) -> io::Result<()> + Send + 'static) -> Chunks {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkSender { tx, buf: Vec::with_capacity(CHUNK_BYTES) };
        if let Err(e) = write(&mut out).and_then(|()| out.flush()) {
            // The client already has a 200: failing the body is how it learns the file is
            // incomplete. If it is the client that left, this send fails too; nobody to tell.
            let _ = out.tx.blocking_send(Err(e));
        }
    });
    rx
}

/// Data out: per-experiment CSV and XLSX, the table dump and the PostgreSQL export.
#[derive(Clone)]
pub struct Exports {
    store: Store,
    catalog: Arc<Catalog>,
    analytics: Analysis,
}

impl Exports {
    pub fn new(store: Store, catalog: Arc<Catalog>, analytics: Analysis) -> Exports {
        Exports { store, catalog, analytics }
    }

    fn owned(&self, who: &Principal, id: Uuid) -> AppResult<Arc<Entry>> {
        self.catalog.owned(who, id)
    }

    /// Starts streaming the assignments CSV; chunks arrive on the returned channel.
    pub fn export_assignments_csv(&self, who: &Principal, id: Uuid) -> AppResult<Chunks> {
        let cols = Assignments::new(self.owned(who, id)?);
        let store = self.store.clone();
        Ok(stream(move |out| {
            let mut line = cols.header().iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(",");
            line.push('\n');
            out.write_all(line.as_bytes())?;
            each_assignment(&store, id, |user, rec, conv| {
                line.clear();
                csv_line(&mut line, &cols.row(user, rec, conv));
                out.write_all(line.as_bytes())
            })
        }))
    }

    /// Starts streaming the workbook: sheet "assignments" (continued on "assignments (2)"...
    /// past Excel's row limit), then sheet "summary".
    pub fn export_assignments_xlsx(&self, who: &Principal, id: Uuid) -> AppResult<Chunks> {
        let cols = Assignments::new(self.owned(who, id)?);
        // Before the first byte: once the body streams, an error can no longer be a JSON one.
        let summary = summary_rows(&self.analytics.analytics(who, id)?);
        let store = self.store.clone();
        Ok(stream(move |out| {
            let mut book = XlsxWriter::new(out);
            book.begin_sheet("assignments", &cols.header())?;
            each_assignment(&store, id, |user, rec, conv| book.row(&cols.row(user, rec, conv)))?;
            summary_sheet(&mut book, &summary)?;
            book.finish().map(drop)
        }))
    }

    /// The per-arm summary as CSV, from the analytics.
    pub fn export_summary_csv(&self, who: &Principal, id: Uuid) -> AppResult<String> {
        let rows = summary_rows(&self.analytics.analytics(who, id)?);
        let mut out = SUMMARY_HEADER.join(",");
        out.push('\n');
        for row in &rows {
            csv_line(&mut out, row);
        }
        Ok(out)
    }

    /// A workbook with only the summary sheet (a few rows: built in memory).
    pub fn export_summary_xlsx(&self, who: &Principal, id: Uuid) -> AppResult<Vec<u8>> {
        let rows = summary_rows(&self.analytics.analytics(who, id)?);
        let mut book = XlsxWriter::new(Vec::new());
        summary_sheet(&mut book, &rows)
            .and_then(|()| book.finish())
            .map_err(|e| AppError::internal(format!("summary workbook: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_quote_and_format_each_cell_type() {
        let mut line = String::new();
        csv_line(
            &mut line,
            &[
                Cell::text("a,b"),
                Cell::text("=1+1"),
                Cell::Number(0.5),
                Cell::Number(f64::NAN),
                Cell::Int(7),
                Cell::Bool(true),
                Cell::Time(0),
                Cell::Empty,
            ],
        );
        assert_eq!(line, "\"a,b\",'=1+1,0.5,,7,true,1970-01-01T00:00:00Z,\n");
    }

    #[test]
    fn the_sender_cuts_64k_chunks_and_fails_once_the_receiver_is_gone() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut out = ChunkSender { tx, buf: Vec::new() };
        out.write_all(&[1; 1000]).unwrap();
        assert!(rx.try_recv().is_err(), "small writes are gathered");
        out.write_all(&vec![2; CHUNK_BYTES]).unwrap();
        let chunk = rx.try_recv().expect("a chunk").expect("data");
        assert_eq!(chunk.len(), CHUNK_BYTES + 1000);
        drop(rx);
        out.write_all(&[3; 10]).unwrap();
        let e = out.flush().expect_err("nobody is listening");
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
