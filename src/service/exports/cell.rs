//! One value of an exported row, and how each text format writes it: CSV (the per-experiment
//! export and the table dump), PostgreSQL's COPY text, and XLSX (in `xlsx`).

use std::borrow::Cow;
use std::fmt::Write as _;
use uuid::Uuid;

use crate::service::rfc3339;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Text(Cow<'a, str>),
    /// NaN and infinities have no spreadsheet or CSV form: they are written empty there.
    Number(f64),
    Int(i64),
    Bool(bool),
    /// Milliseconds since the Unix epoch (UTC).
    Time(i64),
    Uuid(Uuid),
    /// A JSON document, already serialized.
    Json(String),
    UuidList(Vec<Uuid>),
    /// NULL in SQL, an empty field elsewhere.
    Empty,
}

impl<'a> Cell<'a> {
    pub fn text(s: impl Into<Cow<'a, str>>) -> Self {
        Cell::Text(s.into())
    }

    /// The text of a cell that is written as a string (text, ids, JSON).
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Cell::Text(s) => Some(Cow::Borrowed(s)),
            Cell::Json(s) => Some(Cow::Borrowed(s)),
            Cell::Uuid(u) => Some(Cow::Owned(u.to_string())),
            Cell::UuidList(ids) => Some(Cow::Owned(uuid_array(ids))),
            _ => None,
        }
    }
}

/// `{a,b}`: PostgreSQL's array literal, also how a list reads in CSV.
fn uuid_array(ids: &[Uuid]) -> String {
    let inner: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    format!("{{{}}}", inner.join(","))
}

/// Quotes a CSV field when it needs it (RFC 4180).
/// Values starting like a formula are prefixed with `'`, since user ids come from the public
/// tracker and spreadsheets would run them. (XLSX needs no such prefix: an inline string is
/// never read as a formula.)
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

/// Appends one CSV line. Timestamps are RFC 3339; numbers that are not finite stay empty.
pub fn csv_line(out: &mut String, cells: &[Cell]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match cell {
            Cell::Number(v) if v.is_finite() => {
                let _ = write!(out, "{v}");
            }
            Cell::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Cell::Time(ms) => out.push_str(&rfc3339(*ms)),
            Cell::Number(_) | Cell::Empty => {}
            text => out.push_str(&csv_field(&text.as_text().unwrap_or_default())),
        }
    }
    out.push('\n');
}

/// Appends a row in PostgreSQL's COPY text format (tab-separated, `\N` for NULL).
pub fn copy_line(cells: &[Cell], out: &mut String) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match c {
            Cell::Empty => out.push_str("\\N"),
            Cell::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Number(f) if f.is_nan() => out.push_str("NaN"),
            Cell::Number(f) if f.is_infinite() => {
                out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Cell::Number(f) => {
                let _ = write!(out, "{f}");
            }
            Cell::Bool(b) => out.push_str(if *b { "t" } else { "f" }),
            Cell::Time(ms) => out.push_str(&rfc3339(*ms)),
            text => copy_escape(&text.as_text().unwrap_or_default(), out),
        }
    }
    out.push('\n');
}

fn copy_escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            // PostgreSQL text cannot hold NUL. Input validation keeps it out of ids and goals;
            // anything older is kept visible rather than dropped (which could merge keys).
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}
