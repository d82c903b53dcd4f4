//! Admin commands. The CLI runs them in-process when no server holds the data dir, or sends
//! them over the admin socket to the server that does; either way this code runs them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::accounts::{Accounts, NewUser, UserView};
use super::analytics::{Analysis, Analytics};
use super::campaigns::{Campaigns, WaveAnswer};
use super::catalog::Catalog;
use super::experiments::{ExperimentView, Experiments};
use super::exports::Exports;
use super::exports::csv_dump::CsvExport;
use super::exports::pg_export::{self, PgExport};
use super::tracker::Tracker;
use crate::config::Config;
use crate::store::Store;
use crate::store::api::{AuditStore, ExportStore, UserStore};
use crate::store::writer::Writer;
use demo::DemoReport;
use std::sync::Arc;

pub mod demo;

/// What the admin commands work with: nearly everything, as the operator's tool.
pub struct Parts {
    pub store: Store,
    pub writer: Writer,
    pub catalog: Arc<Catalog>,
    pub config: Arc<Config>,
    pub accounts: Accounts,
    pub experiments: Experiments,
    pub tracker: Tracker,
    pub campaigns: Campaigns,
    pub analytics: Analysis,
    pub exports: Exports,
}

/// The admin commands (the CLI's, in-process or over the admin socket).
#[derive(Clone)]
pub struct Admin {
    store: Store,
    writer: Writer,
    catalog: Arc<Catalog>,
    config: Arc<Config>,
    accounts: Accounts,
    experiments: Experiments,
    tracker: Tracker,
    campaigns: Campaigns,
    analytics: Analysis,
    exports: Exports,
}
use crate::engine::crypto::StateKey;
use crate::engine::model::{Allocation, ExpType, Status};
use crate::error::{AppError, AppResult, Code};
use crate::store::records::Role;
use crate::store::{StoreResult, writer};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum AdminRequest {
    UserCreate {
        email: String,
        password: String,
        name: Option<String>,
        role: Option<String>,
    },
    UserList,
    UserSetPassword {
        email: String,
        password: String,
    },
    UserSetRole {
        email: String,
        role: String,
    },
    /// Locks a user out (`disabled: true`) or lets them back in.
    UserSetDisabled {
        email: String,
        disabled: bool,
    },
    UserRemove {
        email: String,
    },
    ExperimentList {
        status: Option<String>,
    },
    ExperimentShow {
        id: String,
    },
    Check {
        experiment: Option<String>,
    },
    Repair {
        experiment: Option<String>,
    },
    KeysRotate,
    Demo {
        visitors: u64,
        seed: u64,
        password: Option<String>,
    },
    /// `out` is absolute: the server's working directory is not the caller's.
    Backup {
        out: String,
        without_secrets: bool,
    },
    AuditVerify,
    ExportPostgres {
        url: String,
        schema: String,
        full: bool,
        #[serde(default)]
        batch_rows: Option<usize>,
    },
    /// `out` is absolute, as for `Backup`.
    ExportCsv {
        out: String,
    },
    /// Sends a campaign wave as the experiment's owner.
    CampaignWave {
        experiment: String,
        recipients: Vec<String>,
        #[serde(default)]
        links: Vec<String>,
    },
}

// What each command answers. The admin socket sends these as JSON and the CLI reads them
// back into the same types, so a command renders the same with or without a server.

/// A list answer: `{items, total}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: usize,
}

impl<T> Listing<T> {
    fn of(items: Vec<T>) -> Self {
        Listing { total: items.len(), items }
    }
}

/// `experiment show`: the experiment and, once it has run, its analytics, as the API
/// answers them.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentShown {
    #[serde(flatten)]
    pub experiment: ExperimentView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analytics: Option<Analytics>,
}

/// What an admin command answers: one of the reports above, sent over the socket as JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AdminAnswer {
    User(UserView),
    Users(Listing<UserView>),
    Experiments(Listing<ExperimentRow>),
    Experiment(Box<ExperimentShown>),
    Check(CheckReport),
    Repair(RepairReport),
    Rotate(RotateReport),
    Demo(DemoReport),
    Backup(BackupReport),
    Audit(AuditReport),
    Postgres(PgExport),
    Csv(CsvExport),
    Wave(Box<WaveAnswer>),
}

impl AdminRequest {
    /// The command's name, for the log.
    pub fn name(&self) -> &'static str {
        match self {
            AdminRequest::UserCreate { .. } => "user_create",
            AdminRequest::UserList => "user_list",
            AdminRequest::UserSetPassword { .. } => "user_set_password",
            AdminRequest::UserSetRole { .. } => "user_set_role",
            AdminRequest::UserSetDisabled { .. } => "user_set_disabled",
            AdminRequest::UserRemove { .. } => "user_remove",
            AdminRequest::ExperimentList { .. } => "experiment_list",
            AdminRequest::ExperimentShow { .. } => "experiment_show",
            AdminRequest::Check { .. } => "check",
            AdminRequest::Repair { .. } => "repair",
            AdminRequest::KeysRotate => "keys_rotate",
            AdminRequest::Demo { .. } => "demo",
            AdminRequest::Backup { .. } => "backup",
            AdminRequest::AuditVerify => "audit_verify",
            AdminRequest::ExportPostgres { .. } => "export_postgres",
            AdminRequest::ExportCsv { .. } => "export_csv",
            AdminRequest::CampaignWave { .. } => "campaign_wave",
        }
    }
}

/// One row of `experiment list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentRow {
    pub id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub exp_type: ExpType,
    pub allocation: Allocation,
    pub status: Status,
    pub archived: bool,
    pub owner: Uuid,
    pub visitors: u64,
    pub conversions: u64,
}

/// Per-arm `(allocations, conversions)`.
pub type ArmCounts = Vec<(u64, u64)>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub ok: bool,
    pub experiments: Vec<CheckedExperiment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckedExperiment {
    pub experiment: Uuid,
    pub ok: bool,
    #[serde(flatten)]
    pub outcome: CheckOutcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CheckOutcome {
    /// `stored` is null for an experiment with no stored counters yet.
    Counted {
        stored: Option<ArmCounts>,
        recounted: ArmCounts,
        visitors: u64,
        conversions: u64,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepairReport {
    pub repaired: Vec<Repaired>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Repaired {
    pub experiment: Uuid,
    pub visitors: u64,
    pub conversions: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    pub out: std::path::PathBuf,
    pub rows: u64,
    /// The secret files copied beside the data (`jwt.key`, `state.key`).
    pub secrets: Vec<String>,
    /// The secrets are set in the configuration, so the data dir holds none.
    pub secrets_in_config: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateReport {
    pub rotated: bool,
    pub states: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    pub checked: u64,
    pub ok: bool,
    pub broken: Vec<BrokenEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokenEntry {
    pub owner: Uuid,
    pub seq: u64,
    pub reason: String,
}

fn parse_role(r: &str) -> AppResult<Role> {
    Role::parse(r).ok_or_else(|| AppError::validation("role", "must be admin or member"))
}

fn parse_id(field: &str, s: &str) -> AppResult<Uuid> {
    Uuid::parse_str(s.trim()).map_err(|_| AppError::validation(field, "must be a UUID"))
}

impl Admin {
    pub fn new(p: Parts) -> Admin {
        Admin {
            store: p.store,
            writer: p.writer,
            catalog: p.catalog,
            config: p.config,
            accounts: p.accounts,
            experiments: p.experiments,
            tracker: p.tracker,
            campaigns: p.campaigns,
            analytics: p.analytics,
            exports: p.exports,
        }
    }

    /// Runs one admin command; long ones report their steps to `progress`.
    pub async fn run(
        &self,
        req: AdminRequest,
        progress: &super::Progress,
    ) -> AppResult<AdminAnswer> {
        Ok(match req {
            AdminRequest::UserCreate { email, password, name, role } => {
                let role = role.as_deref().map(parse_role).transpose()?;
                let u = self
                    .accounts
                    .create_user(
                        NewUser { email, password, name, role, may_be_admin: true },
                        false,
                        "cli",
                    )
                    .await?;
                AdminAnswer::User(UserView::from(&u))
            }
            AdminRequest::UserList => {
                let users = self.store.users()?.iter().map(UserView::from).collect();
                AdminAnswer::Users(Listing::of(users))
            }
            AdminRequest::UserSetPassword { email, password } => AdminAnswer::User(UserView::from(
                &self.accounts.set_password(&email, &password, "cli").await?,
            )),
            AdminRequest::UserSetRole { email, role } => AdminAnswer::User(UserView::from(
                &self.accounts.set_role(&email, parse_role(&role)?, "cli").await?,
            )),
            AdminRequest::UserSetDisabled { email, disabled } => AdminAnswer::User(UserView::from(
                &self.accounts.set_disabled(&email, disabled, "cli").await?,
            )),
            AdminRequest::UserRemove { email } => AdminAnswer::User(UserView::from(
                &self.accounts.remove_user_by_email(&email, "cli").await?,
            )),
            AdminRequest::ExperimentList { status } => {
                AdminAnswer::Experiments(self.experiment_rows(status))
            }
            AdminRequest::ExperimentShow { id } => {
                let id = parse_id("id", &id)?;
                let e = self
                    .catalog
                    .get(id)
                    .ok_or_else(|| AppError::new(Code::ExpNotFound, "experiment not found"))?;
                let analytics =
                    self.writer.live().get(id).map(|s| self.analytics.analyse(&e.exp, &s.state));
                let experiment = ExperimentView::from(&e.exp);
                AdminAnswer::Experiment(Box::new(ExperimentShown { experiment, analytics }))
            }
            AdminRequest::Check { experiment } => AdminAnswer::Check(self.check(experiment).await?),
            AdminRequest::Repair { experiment } => {
                AdminAnswer::Repair(self.repair(experiment).await?)
            }
            AdminRequest::KeysRotate => AdminAnswer::Rotate(self.rotate_key().await?),
            AdminRequest::Demo { visitors, seed, password } => {
                AdminAnswer::Demo(self.demo(visitors, seed, password).await?)
            }
            AdminRequest::Backup { out, without_secrets } => {
                AdminAnswer::Backup(self.backup(out, without_secrets).await?)
            }
            AdminRequest::AuditVerify => AdminAnswer::Audit(self.verify_audit()?),
            AdminRequest::ExportPostgres { url, schema, full, batch_rows } => {
                let batch_rows = batch_rows.unwrap_or(pg_export::DEFAULT_BATCH_ROWS);
                let opts = pg_export::PgOptions { url, schema, full, batch_rows };
                AdminAnswer::Postgres(self.exports.export_postgres(opts, progress).await?)
            }
            AdminRequest::ExportCsv { out } => {
                AdminAnswer::Csv(self.exports.export_csv(out, progress).await?)
            }
            AdminRequest::CampaignWave { experiment, recipients, links } => AdminAnswer::Wave(
                Box::new(self.campaign_wave(experiment, recipients, links).await?),
            ),
        })
    }

    /// The operator sends a wave on the owner's behalf: the same checks and records as the
    /// owner's own POST /experiments/{id}/waves.
    async fn campaign_wave(
        &self,
        experiment: String,
        recipients: Vec<String>,
        links: Vec<String>,
    ) -> AppResult<WaveAnswer> {
        let id = parse_id("experiment", &experiment)?;
        let entry = self.catalog.get(id).ok_or_else(super::experiments::not_found)?;
        let user = self.store.user(entry.exp.owner)?.ok_or_else(super::experiments::not_found)?;
        let owner = super::accounts::Principal { user };
        self.campaigns.send_wave(&owner, id, recipients, links).await
    }

    pub fn experiment_rows(&self, status: Option<String>) -> Listing<ExperimentRow> {
        let mut all = self.catalog.all();
        all.sort_by_key(|e| e.exp.created_at);
        let items = all
            .iter()
            .filter(|e| status.as_deref().is_none_or(|s| e.exp.status.as_str() == s))
            .map(|e| {
                let snap = self.writer.live().get(e.exp.id);
                ExperimentRow {
                    id: e.exp.id,
                    name: e.exp.name.clone(),
                    exp_type: e.exp.exp_type,
                    allocation: e.exp.allocation,
                    status: e.exp.status,
                    archived: e.exp.archived_at.is_some(),
                    owner: e.exp.owner,
                    visitors: snap.as_ref().map(|s| s.state.visitors()).unwrap_or(0),
                    conversions: snap.as_ref().map(|s| s.state.conversions()).unwrap_or(0),
                }
            })
            .collect();
        Listing::of(items)
    }

    pub fn verify_audit(&self) -> AppResult<AuditReport> {
        let (checked, broken) = self.store.verify_audit()?;
        let broken: Vec<BrokenEntry> = broken
            .into_iter()
            .map(|b| BrokenEntry { owner: b.owner, seq: b.seq, reason: b.reason })
            .collect();
        Ok(AuditReport { checked, ok: broken.is_empty(), broken })
    }

    /// Runs `f` on the writer thread and hands back its typed result. (`Writer::exec`
    /// answers JSON; the result travels beside it instead of through it.)
    async fn on_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut writer::Ctx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .exec(move |ctx| {
                let _ = tx.send(f(ctx)?);
                Ok(Value::Null)
            })
            .await?;
        rx.await.map_err(|_| AppError::internal("the writer dropped a result"))
    }

    fn targets(&self, experiment: Option<String>) -> AppResult<Vec<(Uuid, usize)>> {
        match experiment {
            Some(id) => {
                let id = parse_id("experiment", &id)?;
                let e = self
                    .catalog
                    .get(id)
                    .ok_or_else(|| AppError::new(Code::ExpNotFound, "experiment not found"))?;
                Ok(vec![(id, e.exp.arm_count())])
            }
            None => Ok(self
                .catalog
                .all()
                .iter()
                .filter(|e| e.exp.status != crate::engine::model::Status::Draft)
                .map(|e| (e.exp.id, e.exp.arm_count()))
                .collect()),
        }
    }

    /// Recounts every experiment's records and compares with its stored counters.
    pub async fn check(&self, experiment: Option<String>) -> AppResult<CheckReport> {
        let targets = self.targets(experiment)?;
        self.on_writer(move |ctx| {
            let mut rows = Vec::new();
            let mut all_ok = true;
            for (exp, arms) in targets {
                let row = match writer::check(ctx.store, ctx.key, exp, arms) {
                    Ok((stored, recounted)) => {
                        let counts = |s: &crate::store::records::BanditState| {
                            s.arms
                                .iter()
                                .map(|a| (a.allocations, a.conversions))
                                .collect::<Vec<_>>()
                        };
                        let ok = stored.as_ref().is_none_or(|s| {
                            counts(s) == counts(&recounted) && s.excluded == recounted.excluded
                        });
                        all_ok &= ok;
                        let outcome = CheckOutcome::Counted {
                            stored: stored.as_ref().map(counts),
                            recounted: counts(&recounted),
                            visitors: recounted.visitors(),
                            conversions: recounted.conversions(),
                        };
                        CheckedExperiment { experiment: exp, ok, outcome }
                    }
                    Err(e) => {
                        all_ok = false;
                        let outcome = CheckOutcome::Failed { error: e.to_string() };
                        CheckedExperiment { experiment: exp, ok: false, outcome }
                    }
                };
                rows.push(row);
            }
            Ok(CheckReport { ok: all_ok, experiments: rows })
        })
        .await
    }

    /// Rebuilds bandit state from the records: for one experiment, or every broken one.
    pub async fn repair(&self, experiment: Option<String>) -> AppResult<RepairReport> {
        let explicit = experiment.is_some();
        let targets = self.targets(experiment)?;
        let entries: Vec<_> = targets.iter().filter_map(|(id, _)| self.catalog.get(*id)).collect();
        let report = self
            .on_writer(move |ctx| {
                let broken = ctx.broken();
                let mut rows = Vec::new();
                for (exp, arms) in targets {
                    if !explicit && !broken.contains(&exp) {
                        continue;
                    }
                    let st = ctx.rebuild(exp, arms)?;
                    rows.push(Repaired {
                        experiment: exp,
                        visitors: st.visitors(),
                        conversions: st.conversions(),
                    });
                }
                Ok(RepairReport { repaired: rows })
            })
            .await?;
        // A repaired experiment may now serve again.
        for e in entries {
            if e.exp.status != crate::engine::model::Status::Draft {
                let _ = self.writer.register(e.exp.id, e.meta()).await;
            }
        }
        Ok(report)
    }

    /// A consistent snapshot of the data dir into `out`, while serving.
    pub async fn backup(&self, out: String, without_secrets: bool) -> AppResult<BackupReport> {
        let out = std::path::PathBuf::from(out);
        if !out.is_absolute() {
            return Err(AppError::validation("out", "must be an absolute path"));
        }
        if out.join(crate::store::DB_FILE).exists() {
            return Err(AppError::validation("out", "already holds a Samplit data file"));
        }
        let store = self.store.clone();
        let target = out.clone();
        let rows = super::blocking(move || Ok(store.backup_to(&target, &mut |_| {})?)).await?;
        let mut copied = Vec::new();
        if !without_secrets {
            use crate::service::secrets::{JWT_FILE, LINK_FILE, STATE_FILE};
            // The link key too: without it every campaign link already sent stops working.
            for name in [JWT_FILE, STATE_FILE, LINK_FILE] {
                let from = self.config.data_dir().join(name);
                if from.exists() {
                    let text = std::fs::read_to_string(&from)
                        .map_err(|e| AppError::internal(format!("{}: {e}", from.display())))?;
                    crate::service::secrets::write_private(&out.join(name), &text)
                        .map_err(|e| AppError::internal(format!("{name}: {e}")))?;
                    copied.push(name.to_string());
                }
            }
        }
        let configured =
            !self.config.auth.jwt_secret.is_empty() || !self.config.state.encryption_key.is_empty();
        Ok(BackupReport { out, rows, secrets: copied, secrets_in_config: configured })
    }

    /// Re-encrypts every bandit state under a fresh key. The new key is written next to the
    /// old one first, so a crash between the two steps leaves a key that opens the states.
    pub async fn rotate_key(&self) -> AppResult<RotateReport> {
        if !self.config.state.encryption_key.is_empty() {
            return Err(AppError::new(
                Code::BadRequest,
                "the state key is set in the configuration; rotate it there \
                 (samplit reads it at start) rather than in the data dir",
            ));
        }
        let dir = self.config.data_dir().to_path_buf();
        let new_hex = crate::service::secrets::random_hex32();
        let new_key = crate::service::secrets::parse_key(&new_hex)
            .ok_or_else(|| AppError::internal("generated key is malformed"))?;
        let next = dir.join(format!("{}.next", crate::service::secrets::STATE_FILE));
        crate::service::secrets::write_private(&next, &new_hex)
            .map_err(|e| AppError::internal(format!("cannot write {}: {e}", next.display())))?;
        let count = self.on_writer(move |ctx| ctx.reseal_all(StateKey::new(&new_key))).await?;
        std::fs::rename(&next, dir.join(crate::service::secrets::STATE_FILE))
            .map_err(|e| AppError::internal(format!("cannot install the new key: {e}")))?;
        Ok(RotateReport { rotated: true, states: count })
    }
}
