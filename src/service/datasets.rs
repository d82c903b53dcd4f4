//! The tables Samplit's data leaves in, for SQL users and spreadsheets alike: one definition
//! per table (columns, SQL types, key, indexes) and the functions that turn stored records
//! into rows. The PostgreSQL export and the CSV dump both read these, so the two always
//! describe the same data the same way.

use serde_json::Value;
use std::fmt::Write as _;
use uuid::Uuid;

use super::export::csv_field;
use super::rfc3339;
use crate::engine::model::{Arm, Experiment};
use crate::store::PRIMARY_GOAL;
use crate::store::records::{AssignmentRec, ConversionRec};

/// One value of a row, typed so each output can write it its own way.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Milliseconds since the epoch.
    Time(i64),
    Uuid(Uuid),
    /// A JSON document, already serialized.
    Json(String),
    UuidList(Vec<Uuid>),
}

pub struct Column {
    pub name: &'static str,
    pub sql: &'static str,
}

const fn col(name: &'static str, sql: &'static str) -> Column {
    Column { name, sql }
}

pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The primary key: what an upsert matches on.
    pub key: &'static [&'static str],
    /// Constraints beyond the key, inside CREATE TABLE.
    pub constraints: &'static [&'static str],
    /// `(index name, columns)`.
    pub indexes: &'static [(&'static str, &'static str)],
}

impl Table {
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
    }
}

pub const EXPERIMENTS: Table = Table {
    name: "experiments",
    columns: &[
        col("id", "uuid NOT NULL"),
        col("owner_id", "uuid NOT NULL"),
        col("name", "text NOT NULL"),
        col("description", "text NOT NULL"),
        col("type", "text NOT NULL"),
        col("allocation", "text NOT NULL"),
        col("status", "text NOT NULL"),
        col("traffic_allocation", "double precision NOT NULL"),
        col("target_url", "text"),
        col("goal", "jsonb"),
        col("goal_key", "text"),
        col("floor", "double precision NOT NULL"),
        col("burn_in", "bigint NOT NULL"),
        col("seed", "text NOT NULL"),
        col("winner_variant_id", "uuid"),
        col("created_at", "timestamptz NOT NULL"),
        col("updated_at", "timestamptz NOT NULL"),
        col("started_at", "timestamptz"),
        col("completed_at", "timestamptz"),
        col("archived_at", "timestamptz"),
    ],
    key: &["id"],
    constraints: &[],
    indexes: &[("experiments_owner_idx", "owner_id"), ("experiments_status_idx", "status")],
};

pub const ELEMENTS: Table = Table {
    name: "experiment_elements",
    columns: &[
        col("id", "uuid NOT NULL"),
        col("experiment_id", "uuid NOT NULL"),
        col("position", "integer NOT NULL"),
        col("name", "text NOT NULL"),
        col("selector", "text"),
    ],
    key: &["id"],
    constraints: &["FOREIGN KEY (experiment_id) REFERENCES {s}.experiments (id) ON DELETE CASCADE"],
    indexes: &[("experiment_elements_experiment_idx", "experiment_id, position")],
};

pub const VARIANTS: Table = Table {
    name: "element_variants",
    columns: &[
        col("id", "uuid NOT NULL"),
        col("element_id", "uuid NOT NULL"),
        col("experiment_id", "uuid NOT NULL"),
        col("position", "integer NOT NULL"),
        col("name", "text NOT NULL"),
        col("is_control", "boolean NOT NULL"),
        col("weight", "double precision NOT NULL"),
        col("content", "jsonb NOT NULL"),
    ],
    key: &["id"],
    constraints: &[
        "FOREIGN KEY (element_id) REFERENCES {s}.experiment_elements (id) ON DELETE CASCADE",
        "FOREIGN KEY (experiment_id) REFERENCES {s}.experiments (id) ON DELETE CASCADE",
    ],
    indexes: &[
        ("element_variants_element_idx", "element_id, position"),
        ("element_variants_experiment_idx", "experiment_id"),
    ],
};

/// The arms: a variant of an A/B test, or one combination of a multi-element test.
pub const ARMS: Table = Table {
    name: "experiment_arms",
    columns: &[
        col("experiment_id", "uuid NOT NULL"),
        col("arm_index", "integer NOT NULL"),
        col("arm_id", "text NOT NULL"),
        col("name", "text NOT NULL"),
        col("is_control", "boolean NOT NULL"),
        col("variant_ids", "uuid[] NOT NULL"),
    ],
    key: &["experiment_id", "arm_index"],
    constraints: &["FOREIGN KEY (experiment_id) REFERENCES {s}.experiments (id) ON DELETE CASCADE"],
    indexes: &[("experiment_arms_arm_id_idx", "experiment_id, arm_id")],
};

pub const ASSIGNMENTS: Table = Table {
    name: "assignments",
    columns: &[
        col("experiment_id", "uuid NOT NULL"),
        col("user_id", "text NOT NULL"),
        col("assignment_id", "uuid NOT NULL"),
        col("arm_index", "integer"),
        col("arm_id", "text"),
        col("excluded", "boolean NOT NULL"),
        col("weights_version", "integer NOT NULL"),
        col("propensity", "double precision NOT NULL"),
        col("assigned_at", "timestamptz NOT NULL"),
        col("commit_seq", "bigint NOT NULL"),
    ],
    key: &["experiment_id", "user_id"],
    constraints: &["FOREIGN KEY (experiment_id) REFERENCES {s}.experiments (id) ON DELETE CASCADE"],
    indexes: &[
        ("assignments_arm_idx", "experiment_id, arm_index"),
        ("assignments_assigned_at_idx", "assigned_at"),
    ],
};

/// `goal` is the name the conversion was reported under; the experiment's own goal is stored
/// as `''` with `is_primary` set, since an experiment's goal may change while it runs.
pub const CONVERSIONS: Table = Table {
    name: "conversions",
    columns: &[
        col("experiment_id", "uuid NOT NULL"),
        col("user_id", "text NOT NULL"),
        col("goal", "text NOT NULL"),
        col("is_primary", "boolean NOT NULL"),
        col("arm_index", "integer NOT NULL"),
        col("arm_id", "text"),
        col("value", "double precision"),
        col("converted_at", "timestamptz NOT NULL"),
        col("commit_seq", "bigint NOT NULL"),
    ],
    key: &["experiment_id", "user_id", "goal"],
    constraints: &[
        "FOREIGN KEY (experiment_id, user_id) REFERENCES {s}.assignments (experiment_id, user_id) ON DELETE CASCADE",
    ],
    indexes: &[
        ("conversions_arm_idx", "experiment_id, arm_index"),
        ("conversions_converted_at_idx", "converted_at"),
    ],
};

pub const AUDIT_LOG: Table = Table {
    name: "audit_log",
    columns: &[
        col("owner_id", "uuid NOT NULL"),
        col("seq", "bigint NOT NULL"),
        col("at", "timestamptz NOT NULL"),
        col("actor", "text NOT NULL"),
        col("action", "text NOT NULL"),
        col("experiment_id", "uuid"),
        col("data", "jsonb NOT NULL"),
        col("prev_hash", "text NOT NULL"),
        col("hash", "text NOT NULL"),
        col("entry", "text NOT NULL"),
    ],
    key: &["owner_id", "seq"],
    constraints: &[],
    indexes: &[("audit_log_experiment_idx", "experiment_id"), ("audit_log_at_idx", "at")],
};

/// In the order they are created and filled: referenced tables first.
pub const ALL: [&Table; 7] =
    [&EXPERIMENTS, &ELEMENTS, &VARIANTS, &ARMS, &ASSIGNMENTS, &CONVERSIONS, &AUDIT_LOG];

fn name_of<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn opt_text(s: &Option<String>) -> Cell {
    s.as_ref().map_or(Cell::Null, |s| Cell::Text(s.clone()))
}

fn opt_time(t: Option<i64>) -> Cell {
    t.map_or(Cell::Null, Cell::Time)
}

/// An experiment's rows in the experiments, elements, variants and arms tables.
pub struct ExperimentRows {
    pub experiment: Vec<Cell>,
    pub elements: Vec<Vec<Cell>>,
    pub variants: Vec<Vec<Cell>>,
    pub arms: Vec<Vec<Cell>>,
}

pub fn experiment_rows(e: &Experiment) -> ExperimentRows {
    let experiment = vec![
        Cell::Uuid(e.id),
        Cell::Uuid(e.owner),
        Cell::Text(e.name.clone()),
        Cell::Text(e.description.clone()),
        Cell::Text(name_of(&e.exp_type)),
        Cell::Text(name_of(&e.allocation)),
        Cell::Text(name_of(&e.status)),
        Cell::Float(e.traffic_allocation),
        opt_text(&e.target_url),
        e.goal.as_ref().map_or(Cell::Null, |g| Cell::Json(json_text(g))),
        e.goal.as_ref().map_or(Cell::Null, |g| Cell::Text(g.key().to_string())),
        Cell::Float(e.floor),
        Cell::Int(i64::try_from(e.burn_in).unwrap_or(i64::MAX)),
        Cell::Text(e.seed.clone()),
        e.winner_variant_id.map_or(Cell::Null, Cell::Uuid),
        Cell::Time(e.created_at),
        Cell::Time(e.updated_at),
        opt_time(e.started_at),
        opt_time(e.completed_at),
        opt_time(e.archived_at),
    ];
    let mut elements = Vec::new();
    let mut variants = Vec::new();
    for (i, el) in e.elements.iter().enumerate() {
        elements.push(vec![
            Cell::Uuid(el.id),
            Cell::Uuid(e.id),
            Cell::Int(i as i64),
            Cell::Text(el.name.clone()),
            opt_text(&el.selector),
        ]);
        for (j, v) in el.variants.iter().enumerate() {
            variants.push(vec![
                Cell::Uuid(v.id),
                Cell::Uuid(el.id),
                Cell::Uuid(e.id),
                Cell::Int(j as i64),
                Cell::Text(v.name.clone()),
                Cell::Bool(v.is_control),
                Cell::Float(v.weight),
                Cell::Json(json_text(&v.content)),
            ]);
        }
    }
    let arms = e
        .arms()
        .iter()
        .map(|a| {
            let ids = a
                .variant_indices
                .iter()
                .zip(&e.elements)
                .filter_map(|(&v, el)| el.variants.get(v).map(|v| v.id))
                .collect();
            vec![
                Cell::Uuid(e.id),
                Cell::Int(a.index as i64),
                Cell::Text(a.id.clone()),
                Cell::Text(a.name.clone()),
                Cell::Bool(a.is_control),
                Cell::UuidList(ids),
            ]
        })
        .collect();
    ExperimentRows { experiment, elements, variants, arms }
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).map(|v| clean_json(&v)).unwrap_or_else(|_| "null".into())
}

/// JSON text PostgreSQL's jsonb accepts: it refuses `\u0000`, which names and contents may
/// hold, so NUL becomes U+FFFD (keys too).
pub fn clean_json(v: &Value) -> String {
    fn clean(v: &Value) -> Value {
        let fix = |s: &str| s.replace('\0', "\u{FFFD}");
        match v {
            Value::String(s) => Value::String(fix(s)),
            Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (fix(k), clean(v))).collect()),
            other => other.clone(),
        }
    }
    clean(v).to_string()
}

fn arm_id(arms: Option<&[Arm]>, index: u16) -> Cell {
    arms.and_then(|a| a.get(usize::from(index))).map_or(Cell::Null, |a| Cell::Text(a.id.clone()))
}

/// `arms` is None when the experiment is gone from the store.
pub fn assignment_row(
    exp: u128,
    user: &str,
    rec: &AssignmentRec,
    arms: Option<&[Arm]>,
) -> Vec<Cell> {
    let (index, id) = if rec.excluded() {
        (Cell::Null, Cell::Null)
    } else {
        (Cell::Int(i64::from(rec.arm)), arm_id(arms, rec.arm))
    };
    vec![
        Cell::Uuid(Uuid::from_u128(exp)),
        Cell::Text(user.to_string()),
        Cell::Uuid(Uuid::from_u128(rec.id)),
        index,
        id,
        Cell::Bool(rec.excluded()),
        Cell::Int(i64::from(rec.weights_version)),
        Cell::Float(rec.propensity),
        Cell::Time(rec.at),
        Cell::Int(i64::try_from(rec.seq).unwrap_or(i64::MAX)),
    ]
}

pub fn conversion_row(
    exp: u128,
    user: &str,
    goal: &str,
    rec: &ConversionRec,
    arms: Option<&[Arm]>,
) -> Vec<Cell> {
    vec![
        Cell::Uuid(Uuid::from_u128(exp)),
        Cell::Text(user.to_string()),
        Cell::Text(goal.to_string()),
        Cell::Bool(goal == PRIMARY_GOAL),
        Cell::Int(i64::from(rec.arm)),
        arm_id(arms, rec.arm),
        rec.value.map_or(Cell::Null, Cell::Float),
        Cell::Time(rec.at),
        Cell::Int(i64::try_from(rec.seq).unwrap_or(i64::MAX)),
    ]
}

/// An audit entry as `GET /audit` shows it. `entry` is the stored JSON itself, so the chain
/// can be recomputed from SQL: `hash = sha256(prev_hash || entry without "hash")`.
pub fn audit_row(owner: u128, seq: u64, e: &Value) -> Vec<Cell> {
    let text = |k: &str| Cell::Text(e[k].as_str().unwrap_or_default().to_string());
    let at = e["at"]
        .as_str()
        .and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0);
    vec![
        Cell::Uuid(Uuid::from_u128(owner)),
        Cell::Int(i64::try_from(seq).unwrap_or(i64::MAX)),
        Cell::Time(at),
        text("actor"),
        text("action"),
        e["experiment_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map_or(Cell::Null, Cell::Uuid),
        Cell::Json(clean_json(&e["data"])),
        text("prev_hash"),
        text("hash"),
        // jsonb reorders keys and `at` is re-rendered, so the hashed text travels as it is.
        Cell::Text(e.to_string()),
    ]
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        f.to_string()
    }
}

/// Appends a row in PostgreSQL's COPY text format (tab-separated, `\N` for NULL).
pub fn copy_line(cells: &[Cell], out: &mut String) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match c {
            Cell::Null => out.push_str("\\N"),
            Cell::Text(s) | Cell::Json(s) => copy_escape(s, out),
            Cell::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Float(f) => out.push_str(&float_text(*f)),
            Cell::Bool(b) => out.push_str(if *b { "t" } else { "f" }),
            Cell::Time(ms) => out.push_str(&rfc3339(*ms)),
            Cell::Uuid(u) => {
                let _ = write!(out, "{u}");
            }
            Cell::UuidList(ids) => out.push_str(&uuid_array(ids)),
        }
    }
    out.push('\n');
}

fn uuid_array(ids: &[Uuid]) -> String {
    let inner: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    format!("{{{}}}", inner.join(","))
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

/// Appends a row as CSV (RFC 4180; empty for NULL; times as RFC 3339).
pub fn csv_line(cells: &[Cell], out: &mut String) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match c {
            Cell::Null => {}
            Cell::Text(s) | Cell::Json(s) => out.push_str(&csv_field(s)),
            Cell::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Float(f) => out.push_str(&float_text(*f)),
            Cell::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Cell::Time(ms) => out.push_str(&rfc3339(*ms)),
            Cell::Uuid(u) => {
                let _ = write!(out, "{u}");
            }
            Cell::UuidList(ids) => out.push_str(&csv_field(&uuid_array(ids))),
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_would_split_a_row_and_drops_nul() {
        let mut out = String::new();
        copy_line(
            &[
                Cell::Text("a\tb\nc\\d\re\0".into()),
                Cell::Null,
                Cell::Bool(true),
                Cell::Float(f64::NAN),
                Cell::UuidList(vec![Uuid::nil()]),
            ],
            &mut out,
        );
        assert_eq!(
            out,
            "a\\tb\\nc\\\\d\\re\u{FFFD}\t\\N\tt\tNaN\t{00000000-0000-0000-0000-000000000000}\n"
        );
    }

    #[test]
    fn json_for_jsonb_has_no_nul_anywhere() {
        let v = serde_json::json!({"a\u{0}": ["x\u{0}y", 1, {"k": "\u{0}"}], "b": "\\u0000"});
        let out = clean_json(&v);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            serde_json::json!({"a\u{FFFD}": ["x\u{FFFD}y", 1, {"k": "\u{FFFD}"}], "b": "\\u0000"})
        );
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut out = String::new();
        csv_line(&[Cell::Text("=1+1".into()), Cell::Text("a,b".into()), Cell::Null], &mut out);
        assert_eq!(out, "'=1+1,\"a,b\",\n");
    }

    #[test]
    fn every_table_row_matches_its_columns() {
        let rec =
            AssignmentRec { id: 1, arm: 0, weights_version: 0, propensity: 0.5, at: 0, seq: 3 };
        assert_eq!(assignment_row(1, "u", &rec, None).len(), ASSIGNMENTS.columns.len());
        let c = ConversionRec { arm: 0, value: Some(2.0), at: 0, seq: 3 };
        assert_eq!(conversion_row(1, "u", "", &c, None).len(), CONVERSIONS.columns.len());
        let e = serde_json::json!({"at": "2026-01-01T00:00:00Z", "data": {}});
        assert_eq!(audit_row(1, 1, &e).len(), AUDIT_LOG.columns.len());
    }
}
