//! Admin commands. The CLI runs them in-process when no server holds the data dir, or sends
//! them over the admin socket to the server that does; either way this code runs them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Services;
use super::auth::{NewUser, user_json};
use super::experiments::experiment_json;
use crate::engine::crypto::StateKey;
use crate::error::{AppError, AppResult, Code};
use crate::store::records::Role;
use crate::store::writer;

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
}

fn parse_role(r: &str) -> AppResult<Role> {
    Role::parse(r).ok_or_else(|| AppError::validation("role", "must be admin or member"))
}

fn parse_id(field: &str, s: &str) -> AppResult<Uuid> {
    Uuid::parse_str(s.trim()).map_err(|_| AppError::validation(field, "must be a UUID"))
}

impl Services {
    /// Runs one admin command; long ones report their steps to `progress`.
    pub async fn admin(
        self: &std::sync::Arc<Self>,
        req: AdminRequest,
        progress: &super::Progress,
    ) -> AppResult<Value> {
        match req {
            AdminRequest::UserCreate { email, password, name, role } => {
                let role = role.as_deref().map(parse_role).transpose()?;
                let u = self.create_user(
                    NewUser { email, password, name, role, may_be_admin: true },
                    false,
                    "cli",
                )?;
                Ok(user_json(&u))
            }
            AdminRequest::UserList => {
                let users: Vec<Value> = self.store.users()?.iter().map(user_json).collect();
                Ok(json!({"items": users, "total": users.len()}))
            }
            AdminRequest::UserSetPassword { email, password } => {
                Ok(user_json(&self.set_password(&email, &password, "cli")?))
            }
            AdminRequest::UserSetRole { email, role } => {
                Ok(user_json(&self.set_role(&email, parse_role(&role)?, "cli")?))
            }
            AdminRequest::ExperimentList { status } => {
                let mut all = self.catalog.all();
                all.sort_by_key(|e| e.exp.created_at);
                let items: Vec<Value> = all
                    .iter()
                    .filter(|e| status.as_deref().is_none_or(|s| e.exp.status.as_str() == s))
                    .map(|e| {
                        let snap = self.writer.live().get(e.exp.id);
                        json!({"id": e.exp.id, "name": e.exp.name, "type": e.exp.exp_type,
                           "allocation": e.exp.allocation, "status": e.exp.status,
                           "archived": e.exp.archived_at.is_some(), "owner": e.exp.owner,
                           "visitors": snap.as_ref().map(|s| s.state.visitors()).unwrap_or(0),
                           "conversions": snap.as_ref().map(|s| s.state.conversions()).unwrap_or(0)})
                    })
                    .collect();
                Ok(json!({"items": items, "total": items.len()}))
            }
            AdminRequest::ExperimentShow { id } => {
                let id = parse_id("id", &id)?;
                let e = self
                    .catalog
                    .get(id)
                    .ok_or_else(|| AppError::new(Code::ExpNotFound, "experiment not found"))?;
                let snap = self.writer.live().get(id);
                let mut v = experiment_json(&e.exp);
                if let Some(s) = snap {
                    v["analytics"] = json!(self.analyse(&e.exp, &s.state));
                }
                Ok(v)
            }
            AdminRequest::Check { experiment } => self.check(experiment).await,
            AdminRequest::Repair { experiment } => self.repair(experiment).await,
            AdminRequest::KeysRotate => self.rotate_key().await,
            AdminRequest::Demo { visitors, seed, password } => {
                self.demo(visitors, seed, password).await
            }
            AdminRequest::Backup { out, without_secrets } => {
                self.backup(out, without_secrets).await
            }
            AdminRequest::AuditVerify => {
                let (checked, broken) = self.store.verify_audit()?;
                let broken: Vec<Value> = broken
                    .iter()
                    .map(|b| json!({"owner": b.owner, "seq": b.seq, "reason": b.reason}))
                    .collect();
                Ok(json!({"checked": checked, "ok": broken.is_empty(), "broken": broken}))
            }
            AdminRequest::ExportPostgres { url, schema, full, batch_rows } => {
                let batch_rows = batch_rows.unwrap_or(super::pg_export::DEFAULT_BATCH_ROWS);
                let opts = super::pg_export::PgOptions { url, schema, full, batch_rows };
                self.export_postgres(opts, progress).await
            }
            AdminRequest::ExportCsv { out } => self.export_csv(out, progress).await,
        }
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
    async fn check(&self, experiment: Option<String>) -> AppResult<Value> {
        let targets = self.targets(experiment)?;
        let report = self
            .writer
            .exec(move |ctx| {
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
                            json!({"experiment": exp, "ok": ok,
                                "stored": stored.as_ref().map(counts),
                                "recounted": counts(&recounted),
                                "visitors": recounted.visitors(),
                                "conversions": recounted.conversions()})
                        }
                        Err(e) => {
                            all_ok = false;
                            json!({"experiment": exp, "ok": false, "error": e.to_string()})
                        }
                    };
                    rows.push(row);
                }
                Ok(json!({"ok": all_ok, "experiments": rows}))
            })
            .await?;
        Ok(report)
    }

    /// Rebuilds bandit state from the records: for one experiment, or every broken one.
    async fn repair(&self, experiment: Option<String>) -> AppResult<Value> {
        let explicit = experiment.is_some();
        let targets = self.targets(experiment)?;
        let entries: Vec<_> = targets.iter().filter_map(|(id, _)| self.catalog.get(*id)).collect();
        let report = self
            .writer
            .exec(move |ctx| {
                let broken = ctx.broken();
                let mut rows = Vec::new();
                for (exp, arms) in targets {
                    if !explicit && !broken.contains(&exp) {
                        continue;
                    }
                    let st = ctx.rebuild(exp, arms)?;
                    rows.push(json!({"experiment": exp, "visitors": st.visitors(),
                                     "conversions": st.conversions()}));
                }
                Ok(json!({"repaired": rows}))
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
    async fn backup(&self, out: String, without_secrets: bool) -> AppResult<Value> {
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
            for name in [super::secrets::JWT_FILE, super::secrets::STATE_FILE] {
                let from = self.config.data_dir().join(name);
                if from.exists() {
                    let text = std::fs::read_to_string(&from)
                        .map_err(|e| AppError::internal(format!("{}: {e}", from.display())))?;
                    super::secrets::write_private(&out.join(name), &text)
                        .map_err(|e| AppError::internal(format!("{name}: {e}")))?;
                    copied.push(name);
                }
            }
        }
        let configured =
            !self.config.auth.jwt_secret.is_empty() || !self.config.state.encryption_key.is_empty();
        Ok(json!({"out": out, "rows": rows, "secrets": copied,
                  "secrets_in_config": configured}))
    }

    /// Re-encrypts every bandit state under a fresh key. The new key is written next to the
    /// old one first, so a crash between the two steps leaves a key that opens the states.
    async fn rotate_key(&self) -> AppResult<Value> {
        if !self.config.state.encryption_key.is_empty() {
            return Err(AppError::new(
                Code::BadRequest,
                "the state key is set in the configuration; rotate it there \
                 (samplit reads it at start) rather than in the data dir",
            ));
        }
        let dir = self.config.data_dir().to_path_buf();
        let new_hex = super::secrets::random_hex32();
        let new_key = super::secrets::parse_key(&new_hex)
            .ok_or_else(|| AppError::internal("generated key is malformed"))?;
        let next = dir.join(format!("{}.next", super::secrets::STATE_FILE));
        super::secrets::write_private(&next, &new_hex)
            .map_err(|e| AppError::internal(format!("cannot write {}: {e}", next.display())))?;
        let count = self
            .writer
            .exec(move |ctx| {
                let n = ctx.reseal_all(StateKey::new(&new_key))?;
                Ok(json!(n))
            })
            .await?;
        std::fs::rename(&next, dir.join(super::secrets::STATE_FILE))
            .map_err(|e| AppError::internal(format!("cannot install the new key: {e}")))?;
        Ok(json!({"rotated": true, "states": count}))
    }
}
