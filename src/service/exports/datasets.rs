//! The tables Samplit's data leaves in, for SQL users and spreadsheets alike: one definition
//! per table (columns, SQL types, key, indexes) and the functions that turn stored records
//! into rows. The PostgreSQL export and the CSV dump both read these, so the two always
//! describe the same data the same way.

use serde_json::Value;
use uuid::Uuid;

pub use super::cell::{Cell, copy_line};
use crate::engine::model::{Arm, Experiment};
use crate::store::PRIMARY_GOAL;
use crate::store::records::{AssignmentRec, ConversionRec};

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

fn opt_text(s: &Option<String>) -> Cell<'static> {
    s.as_ref().map_or(Cell::Empty, |s| Cell::text(s.clone()))
}

fn opt_time(t: Option<i64>) -> Cell<'static> {
    t.map_or(Cell::Empty, Cell::Time)
}

/// An experiment's rows in the experiments, elements, variants and arms tables.
pub struct ExperimentRows {
    pub experiment: Vec<Cell<'static>>,
    pub elements: Vec<Vec<Cell<'static>>>,
    pub variants: Vec<Vec<Cell<'static>>>,
    pub arms: Vec<Vec<Cell<'static>>>,
}

pub fn experiment_rows(e: &Experiment) -> ExperimentRows {
    let experiment = vec![
        Cell::Uuid(e.id),
        Cell::Uuid(e.owner),
        Cell::text(e.name.clone()),
        Cell::text(e.description.clone()),
        Cell::text(name_of(&e.exp_type)),
        Cell::text(name_of(&e.allocation)),
        Cell::text(name_of(&e.status)),
        Cell::Number(e.traffic_allocation),
        opt_text(&e.target_url),
        e.goal.as_ref().map_or(Cell::Empty, |g| Cell::Json(json_text(g))),
        e.goal.as_ref().map_or(Cell::Empty, |g| Cell::text(g.key().to_string())),
        Cell::Number(e.floor),
        Cell::Int(i64::try_from(e.burn_in).unwrap_or(i64::MAX)),
        Cell::text(e.seed.clone()),
        e.winner_variant_id.map_or(Cell::Empty, Cell::Uuid),
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
            Cell::text(el.name.clone()),
            opt_text(&el.selector),
        ]);
        for (j, v) in el.variants.iter().enumerate() {
            variants.push(vec![
                Cell::Uuid(v.id),
                Cell::Uuid(el.id),
                Cell::Uuid(e.id),
                Cell::Int(j as i64),
                Cell::text(v.name.clone()),
                Cell::Bool(v.is_control),
                Cell::Number(v.weight),
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
                Cell::text(a.id.clone()),
                Cell::text(a.name.clone()),
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

fn arm_id(arms: Option<&[Arm]>, index: u16) -> Cell<'static> {
    arms.and_then(|a| a.get(usize::from(index))).map_or(Cell::Empty, |a| Cell::text(a.id.clone()))
}

/// `arms` is None when the experiment is gone from the store.
pub fn assignment_row(
    exp: u128,
    user: &str,
    rec: &AssignmentRec,
    arms: Option<&[Arm]>,
) -> Vec<Cell<'static>> {
    let (index, id) = if rec.excluded() {
        (Cell::Empty, Cell::Empty)
    } else {
        (Cell::Int(i64::from(rec.arm)), arm_id(arms, rec.arm))
    };
    vec![
        Cell::Uuid(Uuid::from_u128(exp)),
        Cell::text(user.to_string()),
        Cell::Uuid(Uuid::from_u128(rec.id)),
        index,
        id,
        Cell::Bool(rec.excluded()),
        Cell::Int(i64::from(rec.weights_version)),
        Cell::Number(rec.propensity),
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
) -> Vec<Cell<'static>> {
    vec![
        Cell::Uuid(Uuid::from_u128(exp)),
        Cell::text(user.to_string()),
        Cell::text(goal.to_string()),
        Cell::Bool(goal == PRIMARY_GOAL),
        Cell::Int(i64::from(rec.arm)),
        arm_id(arms, rec.arm),
        rec.value.map_or(Cell::Empty, Cell::Number),
        Cell::Time(rec.at),
        Cell::Int(i64::try_from(rec.seq).unwrap_or(i64::MAX)),
    ]
}

/// An audit entry as `GET /audit` shows it. `entry` is the stored JSON itself, so the chain
/// can be recomputed from SQL: `hash = sha256(prev_hash || entry without "hash")`.
pub fn audit_row(owner: u128, seq: u64, e: &Value) -> Vec<Cell<'static>> {
    let text = |k: &str| Cell::text(e[k].as_str().unwrap_or_default().to_string());
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
            .map_or(Cell::Empty, Cell::Uuid),
        Cell::Json(clean_json(&e["data"])),
        text("prev_hash"),
        text("hash"),
        // jsonb reorders keys and `at` is re-rendered, so the hashed text travels as it is.
        Cell::text(e.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_would_split_a_row_and_drops_nul() {
        let mut out = String::new();
        copy_line(
            &[
                Cell::text("a\tb\nc\\d\re\0"),
                Cell::Empty,
                Cell::Bool(true),
                Cell::Number(f64::NAN),
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
        super::super::cell::csv_line(
            &mut out,
            &[Cell::text("=1+1"), Cell::text("a,b"), Cell::Empty],
        );
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
