//! `samplit export postgres`: a queryable PostgreSQL copy of the data, kept up to date by
//! re-running it.
//!
//! - Idempotent: every batch is an upsert on the table's primary key.
//! - Incremental: assignments and conversions carry the group commit that wrote them, and
//!   the target remembers (in `samplit_export_state`, inside the same transaction as each
//!   batch) up to which commit it holds everything. Audit chains are append-only, so the
//!   target's own `max(seq)` per owner says where to go on. Experiments are few: the ones
//!   whose `updated_at` differs are rewritten, the ones gone from Samplit are deleted.
//! - Resumable: one transaction per batch, each moving the cursor; an interrupted run leaves
//!   whole batches only, and the next run finishes the interrupted range first.
//!
//! The cursor lives in the target rather than in Samplit because that is where the truth
//! is: a dropped or restored target database starts over by itself.

use bytes::Bytes;
use futures_util::SinkExt;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls, Transaction};

use super::Exports;
use super::datasets::{self, Cell, Table};
use crate::engine::model::Arm;
use crate::error::{AppError, AppResult, Code};
use crate::service::{Progress, ProgressEvent, blocking};
use crate::store::api::{AuditStore, ExperimentStore, ExportStore};
use crate::store::scan::{AssignmentKey, ConversionKey, SeqRange};

pub const DEFAULT_BATCH_ROWS: usize = 5_000;
/// Rows a page looks at before handing back, so an incremental run over a big, mostly
/// exported table still reports progress.
const MAX_SCAN: u64 = 200_000;
const STATE: &str = "samplit_export_state";

#[derive(Debug, Clone)]
pub struct PgOptions {
    pub url: String,
    pub schema: String,
    /// Ignore the target's cursor and upsert everything again.
    pub full: bool,
    /// Rows per transaction.
    pub batch_rows: usize,
}

/// What the target says it holds of this data set.
#[derive(Debug, Default)]
struct Cursor {
    done: u64,
    pending: Option<Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    upto: u64,
    table: Hot,
    assignment: Option<AssignmentKey>,
    conversion: Option<ConversionKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hot {
    Assignments,
    Conversions,
}

impl Hot {
    fn name(self) -> &'static str {
        match self {
            Hot::Assignments => "assignments",
            Hot::Conversions => "conversions",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    experiments: u64,
    experiments_deleted: u64,
    assignments: u64,
    conversions: u64,
    audit_log: u64,
}

fn target_err(context: &str, e: &tokio_postgres::Error) -> AppError {
    let message = match e.as_db_error() {
        Some(db) => match db.code().code() {
            "28P01" | "28000" => format!("PostgreSQL refused the login: {}", db.message()),
            "3D000" => format!("{} (create it first, or name another in the URL)", db.message()),
            "42501" => format!(
                "{context}: {} (the user needs CREATE on the database and the schema)",
                db.message()
            ),
            code => format!("{context}: {} (SQLSTATE {code})", db.message()),
        },
        None => format!("{context}: {e}"),
    };
    AppError::new(Code::ExportTarget, message)
}

fn ident(schema: &str) -> AppResult<String> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(AppError::validation(
            "schema",
            "must be a lower-case SQL name (letters, digits, _; at most 63)",
        ));
    }
    Ok(format!("\"{schema}\""))
}

/// The URL without its password, for messages and the summary.
pub fn redacted(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// Marks the tables an export created, so it never writes into a same-named table of
/// someone else's.
const TAG: &str = "samplit export";

fn create_sql(s: &str) -> String {
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {s}.{STATE} (
           source_id uuid PRIMARY KEY,
           done_seq bigint NOT NULL,
           pending_seq bigint,
           pending_table text,
           pending_experiment uuid,
           pending_user text, -- hex of the key's bytes
           pending_goal text, -- hex
           exported_at timestamptz NOT NULL,
           samplit_version text NOT NULL);\n"
    );
    for t in datasets::ALL {
        let mut parts: Vec<String> =
            t.columns.iter().map(|c| format!("{} {}", c.name, c.sql)).collect();
        parts.push(format!("PRIMARY KEY ({})", t.key.join(", ")));
        parts.extend(t.constraints.iter().map(|c| c.replace("{s}", s)));
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {s}.{} (\n  {}\n);\n",
            t.name,
            parts.join(",\n  ")
        ));
        for (name, cols) in t.indexes {
            sql.push_str(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {s}.{} ({cols});\n",
                t.name
            ));
        }
    }
    for name in datasets::ALL.iter().map(|t| t.name).chain([STATE]) {
        sql.push_str(&format!("COMMENT ON TABLE {s}.{name} IS '{TAG}';\n"));
    }
    sql
}

/// Creates the schema and tables when missing, refusing a schema that already holds a table
/// of one of our names that an export did not create.
async fn prepare(client: &Client, schema: &str, s: &str) -> AppResult<()> {
    let names: Vec<String> =
        datasets::ALL.iter().map(|t| t.name.to_string()).chain([STATE.to_string()]).collect();
    let found = client
        .query(
            "SELECT c.relname::text, coalesce(obj_description(c.oid, 'pg_class'), '') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = ANY($2)",
            &[&schema, &names],
        )
        .await
        .map_err(|e| target_err("reading the schema", &e))?;
    for row in &found {
        let (name, tag): (String, String) = (text(row, 0)?, text(row, 1)?);
        if tag != TAG {
            return Err(AppError::new(
                Code::ExportTarget,
                format!(
                    "schema {schema} already has a table {name} that Samplit did not create; \
                     export into another schema (--schema)"
                ),
            ));
        }
    }
    // CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists.
    let exists = client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(|e| target_err("reading the schema", &e))?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE SCHEMA {s}"))
            .await
            .map_err(|e| target_err("creating the schema", &e))?;
    }
    client.batch_execute(&create_sql(s)).await.map_err(|e| target_err("creating the tables", &e))
}

fn text(row: &tokio_postgres::Row, i: usize) -> AppResult<String> {
    row.try_get(i).map_err(|e| target_err("reading the target", &e))
}

fn int(row: &tokio_postgres::Row, i: usize) -> AppResult<Option<i64>> {
    row.try_get(i).map_err(|e| target_err("reading the target", &e))
}

/// Streams rows into a session temp table with COPY, then upserts them in one statement.
async fn upsert(
    tx: &Transaction<'_>,
    s: &str,
    t: &Table,
    rows: &[Vec<Cell<'_>>],
) -> AppResult<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let err = |e: tokio_postgres::Error| target_err(&format!("writing {}", t.name), &e);
    let tmp = format!("samplit_tmp_{}", t.name);
    let cols = t.column_list();
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE {s}.{} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        t.name
    ))
    .await
    .map_err(err)?;
    copy_rows(tx, &format!("COPY {tmp} ({cols}) FROM STDIN"), rows).await.map_err(err)?;
    let updates: Vec<String> = t
        .columns
        .iter()
        .filter(|c| !t.key.contains(&c.name))
        .map(|c| format!("{0} = EXCLUDED.{0}", c.name))
        .collect();
    let n = tx
        .execute(
            &format!(
                "INSERT INTO {s}.{name} ({cols}) SELECT DISTINCT ON ({key}) {cols} FROM {tmp} \
                 ON CONFLICT ({key}) DO UPDATE SET {updates}",
                name = t.name,
                key = t.key.join(", "),
                updates = updates.join(", ")
            ),
            &[],
        )
        .await
        .map_err(err)?;
    Ok(n)
}

async fn copy_rows(
    tx: &Transaction<'_>,
    stmt: &str,
    rows: &[Vec<Cell<'_>>],
) -> Result<(), tokio_postgres::Error> {
    let sink = tx.copy_in::<_, Bytes>(stmt).await?;
    let mut sink = Box::pin(sink);
    let mut buf = String::new();
    for r in rows {
        datasets::copy_line(r, &mut buf);
        if buf.len() >= 256 * 1024 {
            sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
        }
    }
    if !buf.is_empty() {
        sink.send(Bytes::from(buf)).await?;
    }
    sink.as_mut().finish().await?;
    Ok(())
}

struct Run<'a> {
    services: &'a Exports,
    client: Client,
    s: String,
    source: String,
    progress: &'a Progress,
    batch: usize,
    scanned: u64,
    total: u64,
    counts: Counts,
    arms: HashMap<u128, Arc<Vec<Arm>>>,
}

/// What `export postgres` sent: rows upserted per table in this run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PgExport {
    /// The target without its password.
    pub target: String,
    pub schema: String,
    /// The data set's instance id (a restored backup is a data set of its own).
    pub source_id: String,
    /// Everything committed up to here is in the target.
    pub commit_seq: u64,
    /// This run finished an interrupted one first.
    pub resumed: bool,
    pub experiments: u64,
    pub experiments_deleted: u64,
    pub assignments: u64,
    pub conversions: u64,
    pub audit_log: u64,
}

impl Exports {
    pub async fn export_postgres(
        &self,
        opts: PgOptions,
        progress: &Progress,
    ) -> AppResult<PgExport> {
        let s = ident(&opts.schema)?;
        if !(1..=100_000).contains(&opts.batch_rows) {
            return Err(AppError::validation("batch_rows", "must be 1 to 100000"));
        }
        let mut config: tokio_postgres::Config = opts.url.parse().map_err(|e| {
            AppError::validation(
                "url",
                format!("not a PostgreSQL URL (postgres://user:password@host:port/db): {e}"),
            )
        })?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(AppError::validation(
                "url",
                "sslmode=require is not supported: this build talks to PostgreSQL without TLS \
                 (use a local socket, an SSH tunnel or a trusted network with sslmode=disable)",
            ));
        }
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("samplit-export");
        // A target that stops answering fails the run (resumable) instead of hanging it.
        config.keepalives_idle(Duration::from_secs(30));
        config.tcp_user_timeout(Duration::from_secs(60));
        let target = redacted(&config);
        progress(ProgressEvent::phase(format!("connecting to {target}")));
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| target_err(&format!("cannot connect to {target}"), &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL export connection ended with an error");
            }
        });
        // The lock is the session's: a run that just ended releases it when PostgreSQL has
        // seen its connection close, a moment after its answer reached the caller. Ask a
        // few times over two seconds before calling it another run.
        let mut lock = false;
        for attempt in 0..20 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            lock = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtext('samplit_export:' || $1))",
                    &[&opts.schema],
                )
                .await
                .map_err(|e| target_err("locking the target", &e))?
                .try_get(0)
                .map_err(|e| target_err("locking the target", &e))?;
            if lock {
                break;
            }
        }
        if !lock {
            return Err(AppError::new(
                Code::ExportTarget,
                format!(
                    "another export into {target} schema {} is running (an export whose \
                     command was interrupted goes on in the server until it ends)",
                    opts.schema
                ),
            ));
        }
        prepare(&client, &opts.schema, &s).await?;

        let store = self.store.clone();
        let (source, (na, nc, nl)) =
            blocking(move || Ok((store.instance_id()?, store.export_row_counts()?))).await?;
        let mut run = Run {
            services: self,
            client,
            s,
            source: source.to_string(),
            progress,
            batch: opts.batch_rows,
            scanned: 0,
            total: 0,
            counts: Counts::default(),
            arms: HashMap::new(),
        };
        let mut cursor = run.cursor().await?;
        if opts.full {
            cursor = Cursor::default();
        }
        let resumed = cursor.pending.is_some();
        let store = self.store.clone();
        let upto = blocking(move || Ok(store.commit_seq()?)).await?;
        let held = cursor.pending.as_ref().map_or(cursor.done, |p| p.upto);
        if upto < held {
            return Err(AppError::new(
                Code::ExportTarget,
                format!(
                    "the target holds records up to commit {held} but this data set is at \
                     {upto}; it went back in time (restored?): export into a fresh schema"
                ),
            ));
        }
        // Experiments first: every assignment committed by `upto` belongs to one of them.
        run.sync_experiments(opts.full).await?;
        let done_after_pending = cursor.pending.as_ref().map_or(cursor.done, |p| p.upto);
        let main_pass = upto > done_after_pending || opts.full;
        run.total = (na + nc) * (u64::from(resumed) + u64::from(main_pass)) + nl;
        if let Some(p) = cursor.pending.clone() {
            let range = SeqRange { after: cursor.done, upto: p.upto };
            run.pass(range, Some(p)).await?;
            cursor.done = range.upto;
        }
        if main_pass {
            run.pass(SeqRange { after: cursor.done, upto }, None).await?;
        }
        run.audit(opts.full).await?;
        run.scanned = run.total;
        run.report("done");
        let c = &run.counts;
        Ok(PgExport {
            target,
            schema: opts.schema,
            source_id: run.source,
            commit_seq: upto.max(cursor.done),
            resumed,
            experiments: c.experiments,
            experiments_deleted: c.experiments_deleted,
            assignments: c.assignments,
            conversions: c.conversions,
            audit_log: c.audit_log,
        })
    }
}

impl Run<'_> {
    fn report(&self, phase: &str) {
        let c = &self.counts;
        (self.progress)(ProgressEvent {
            phase: phase.to_string(),
            done: Some(self.scanned.min(self.total)),
            total: Some(self.total),
            rows: Some(c.experiments + c.assignments + c.conversions + c.audit_log),
        });
    }

    async fn cursor(&self) -> AppResult<Cursor> {
        let s = &self.s;
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT source_id::text, done_seq, pending_seq, pending_table, \
                     pending_experiment::text, pending_user, pending_goal FROM {s}.{STATE}"
                ),
                &[],
            )
            .await
            .map_err(|e| target_err("reading the export state", &e))?;
        let mut cursor = Cursor::default();
        for row in rows {
            let source = text(&row, 0)?;
            if source != self.source {
                return Err(AppError::new(
                    Code::ExportTarget,
                    format!(
                        "this schema holds the export of another Samplit data set ({source}; \
                         a data dir restored from a backup counts as another); export into \
                         another --schema or database"
                    ),
                ));
            }
            cursor.done = u64::try_from(int(&row, 1)?.unwrap_or(0)).unwrap_or(0);
            let opt = |i: usize| -> AppResult<Option<String>> {
                row.try_get(i).map_err(|e| target_err("reading the export state", &e))
            };
            let upto = int(&row, 2)?;
            // Keys are stored hex-encoded: PostgreSQL text cannot hold every string we can.
            let unhex = |v: Option<String>| {
                v.and_then(|h| hex::decode(h).ok()).and_then(|b| String::from_utf8(b).ok())
            };
            let (table, exp) = (opt(3)?, opt(4)?);
            let (user, goal) = (unhex(opt(5)?), unhex(opt(6)?));
            let exp = exp.and_then(|e| uuid::Uuid::parse_str(&e).ok()).map(|u| u.as_u128());
            if let (Some(upto), Some(table)) = (upto, table) {
                let hot = if table == "conversions" { Hot::Conversions } else { Hot::Assignments };
                cursor.pending = Some(Pending {
                    upto: u64::try_from(upto).unwrap_or(0),
                    table: hot,
                    assignment: match (hot, exp, &user) {
                        (Hot::Assignments, Some(e), Some(u)) => Some((e, u.clone())),
                        _ => None,
                    },
                    conversion: match (hot, exp, &user, goal) {
                        (Hot::Conversions, Some(e), Some(u), Some(g)) => Some((e, u.clone(), g)),
                        _ => None,
                    },
                });
            }
        }
        Ok(cursor)
    }

    async fn save_cursor(
        s: &str,
        source: &str,
        tx: &Transaction<'_>,
        done: u64,
        p: Option<&Pending>,
    ) -> AppResult<()> {
        let (exp, user, goal) = match p {
            Some(Pending { table: Hot::Assignments, assignment: Some((e, u)), .. }) => {
                (Some(uuid::Uuid::from_u128(*e).to_string()), Some(hex::encode(u)), None)
            }
            Some(Pending { table: Hot::Conversions, conversion: Some((e, u, g)), .. }) => (
                Some(uuid::Uuid::from_u128(*e).to_string()),
                Some(hex::encode(u)),
                Some(hex::encode(g)),
            ),
            _ => (None, None, None),
        };
        let seq = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        tx.execute(
            &format!(
                "INSERT INTO {s}.{STATE} (source_id, done_seq, pending_seq, pending_table, \
                 pending_experiment, pending_user, pending_goal, exported_at, samplit_version) \
                 VALUES ($1::text::uuid, $2, $3, $4, $5::text::uuid, $6, $7, now(), $8) \
                 ON CONFLICT (source_id) DO UPDATE SET done_seq = EXCLUDED.done_seq, \
                 pending_seq = EXCLUDED.pending_seq, pending_table = EXCLUDED.pending_table, \
                 pending_experiment = EXCLUDED.pending_experiment, \
                 pending_user = EXCLUDED.pending_user, pending_goal = EXCLUDED.pending_goal, \
                 exported_at = EXCLUDED.exported_at, samplit_version = EXCLUDED.samplit_version"
            ),
            &[
                &source,
                &seq(done),
                &p.map(|p| seq(p.upto)),
                &p.map(|p| p.table.name()),
                &exp,
                &user,
                &goal,
                &env!("CARGO_PKG_VERSION"),
            ],
        )
        .await
        .map_err(|e| target_err("saving the export state", &e))?;
        Ok(())
    }

    /// Rewrites the experiments whose `updated_at` changed (with their elements, variants and
    /// arms) and deletes the ones Samplit no longer has, in one transaction.
    async fn sync_experiments(&mut self, full: bool) -> AppResult<()> {
        self.report("experiments");
        let store = self.services.store.clone();
        let exps = blocking(move || Ok(store.experiments()?)).await?;
        self.arms = exps.iter().map(|e| (e.id.as_u128(), Arc::new(e.arms()))).collect();
        let s = self.s.clone();
        let have: HashMap<String, i64> = self
            .client
            .query(
                &format!(
                    "SELECT id::text, (extract(epoch FROM updated_at) * 1000)::bigint \
                     FROM {s}.experiments"
                ),
                &[],
            )
            .await
            .map_err(|e| target_err("reading experiments", &e))?
            .iter()
            .map(|r| Ok((text(r, 0)?, int(r, 1)?.unwrap_or(i64::MIN))))
            .collect::<AppResult<_>>()?;
        let changed: Vec<_> = exps
            .iter()
            .filter(|e| full || have.get(&e.id.to_string()) != Some(&e.updated_at))
            .collect();
        let ids: HashSet<String> = exps.iter().map(|e| e.id.to_string()).collect();
        let gone: Vec<String> = have.keys().filter(|id| !ids.contains(*id)).cloned().collect();
        let changed_ids: Vec<String> = changed.iter().map(|e| e.id.to_string()).collect();
        let (mut rows, mut elements, mut variants, mut arms) = (vec![], vec![], vec![], vec![]);
        for e in &changed {
            let r = datasets::experiment_rows(e);
            rows.push(r.experiment);
            elements.extend(r.elements);
            variants.extend(r.variants);
            arms.extend(r.arms);
        }
        let tx = self.client.transaction().await.map_err(|e| target_err("beginning", &e))?;
        let err = |e: tokio_postgres::Error| target_err("writing experiments", &e);
        if !gone.is_empty() {
            tx.execute(&format!("DELETE FROM {s}.experiments WHERE id::text = ANY($1)"), &[&gone])
                .await
                .map_err(err)?;
        }
        // Children are replaced wholesale: a draft's elements may have been rebuilt.
        for t in [&datasets::ELEMENTS, &datasets::ARMS] {
            tx.execute(
                &format!("DELETE FROM {s}.{} WHERE experiment_id::text = ANY($1)", t.name),
                &[&changed_ids],
            )
            .await
            .map_err(err)?;
        }
        let n = upsert(&tx, &s, &datasets::EXPERIMENTS, &rows).await?;
        upsert(&tx, &s, &datasets::ELEMENTS, &elements).await?;
        upsert(&tx, &s, &datasets::VARIANTS, &variants).await?;
        upsert(&tx, &s, &datasets::ARMS, &arms).await?;
        tx.commit().await.map_err(err)?;
        self.counts.experiments += n;
        self.counts.experiments_deleted += gone.len() as u64;
        Ok(())
    }

    /// One batch, one transaction: the rows, and with `cursor` the export state `(done,
    /// pending)` that says where the next batch starts. Returns the rows written.
    async fn commit_batch(
        &mut self,
        table: &Table,
        rows: &[Vec<Cell<'_>>],
        cursor: Option<(u64, Option<&Pending>)>,
    ) -> AppResult<u64> {
        let tx = self.client.transaction().await.map_err(|e| target_err("beginning", &e))?;
        let n = upsert(&tx, &self.s, table, rows).await?;
        if let Some((done, pending)) = cursor {
            Self::save_cursor(&self.s, &self.source, &tx, done, pending).await?;
        }
        tx.commit().await.map_err(|e| target_err(&format!("committing {}", table.name), &e))?;
        Ok(n)
    }

    /// Exports the assignments, then the conversions, committed in `range`, from where an
    /// interrupted run stopped when `from` says so.
    async fn pass(&mut self, range: SeqRange, from: Option<Pending>) -> AppResult<()> {
        let start = from.as_ref().map_or(Hot::Assignments, |p| p.table);
        let batch = self.batch;
        let store = self.services.store.clone();
        let pending = |table, assignment, conversion| Pending {
            upto: range.upto,
            table,
            assignment,
            conversion,
        };
        if start == Hot::Assignments {
            let mut after = from.as_ref().and_then(|p| p.assignment.clone());
            loop {
                let (st, a) = (store.clone(), after.clone());
                let page = blocking(move || {
                    Ok(st.assignments_page(a.as_ref(), range, batch, MAX_SCAN)?)
                })
                .await?;
                self.scanned += page.scanned;
                after = page.last.clone();
                if !page.rows.is_empty() || page.done {
                    let rows: Vec<_> = page
                        .rows
                        .iter()
                        .map(|((e, u), r)| {
                            datasets::assignment_row(
                                *e,
                                u,
                                r,
                                self.arms.get(e).map(|a| a.as_slice()),
                            )
                        })
                        .collect();
                    let next = if page.done {
                        pending(Hot::Conversions, None, None)
                    } else {
                        pending(Hot::Assignments, after.clone(), None)
                    };
                    let cursor = Some((range.after, Some(&next)));
                    self.counts.assignments +=
                        self.commit_batch(&datasets::ASSIGNMENTS, &rows, cursor).await?;
                }
                self.report("assignments");
                if page.done {
                    break;
                }
            }
        }
        let mut after = from.and_then(|p| p.conversion);
        loop {
            let (st, a) = (store.clone(), after.clone());
            let page =
                blocking(move || Ok(st.conversions_page(a.as_ref(), range, batch, MAX_SCAN)?))
                    .await?;
            self.scanned += page.scanned;
            after = page.last.clone();
            if !page.rows.is_empty() || page.done {
                let rows: Vec<_> = page
                    .rows
                    .iter()
                    .map(|((e, u, g), r)| {
                        datasets::conversion_row(
                            *e,
                            u,
                            g,
                            r,
                            self.arms.get(e).map(|a| a.as_slice()),
                        )
                    })
                    .collect();
                let next = pending(Hot::Conversions, None, after.clone());
                // The last batch closes the range; the others leave it pending.
                let cursor =
                    if page.done { (range.upto, None) } else { (range.after, Some(&next)) };
                self.counts.conversions +=
                    self.commit_batch(&datasets::CONVERSIONS, &rows, Some(cursor)).await?;
            }
            self.report("conversions");
            if page.done {
                return Ok(());
            }
        }
    }

    /// Appends what each owner's chain gained since the target's newest entry of it.
    async fn audit(&mut self, full: bool) -> AppResult<()> {
        let s = self.s.clone();
        let have: HashMap<String, i64> = if full {
            HashMap::new()
        } else {
            self.client
                .query(
                    &format!(
                        "SELECT owner_id::text, max(seq) FROM {s}.audit_log GROUP BY owner_id"
                    ),
                    &[],
                )
                .await
                .map_err(|e| target_err("reading the audit log", &e))?
                .iter()
                .map(|r| Ok((text(r, 0)?, int(r, 1)?.unwrap_or(0))))
                .collect::<AppResult<_>>()?
        };
        let batch = self.batch;
        let store = self.services.store.clone();
        let st = store.clone();
        let heads = blocking(move || Ok(st.audit_heads()?)).await?;
        for (owner, head) in heads {
            let mut after = have
                .get(&uuid::Uuid::from_u128(owner).to_string())
                .map_or(0, |&v| u64::try_from(v).unwrap_or(0));
            while after < head {
                let st = store.clone();
                let page = blocking(move || Ok(st.audit_page(owner, after, batch)?)).await?;
                let Some(&(last, _)) = page.last() else { break };
                let rows: Vec<Vec<Cell<'static>>> =
                    page.iter().map(|(seq, e)| datasets::audit_row(owner, *seq, e)).collect();
                self.counts.audit_log +=
                    self.commit_batch(&datasets::AUDIT_LOG, &rows, None).await?;
                self.scanned += page.len() as u64;
                after = last;
                self.report("audit_log");
            }
        }
        Ok(())
    }
}
