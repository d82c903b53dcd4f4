//! Experiment management: create, read, change, the lifecycle, archive and delete. Every
//! call is scoped to its owner; another user's experiment is "not found".

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::Principal;
use super::catalog::{Catalog, Entry};
use super::notifications::Notifications;
use super::webhooks::Webhooks;
use super::{now_ms, rfc3339};
use crate::config::Config;
use crate::engine::model::{
    self, Allocation, Channel, Content, Defaults, ExpType, ExperimentInput, Goal, Status,
    Transition,
};
use crate::error::{AppError, AppResult, Code};
use crate::store::Store;
use crate::store::api::{ExperimentStore, NotificationStore};
use crate::store::audit::Draft;
use crate::store::writer::Writer;

pub struct ListQuery {
    pub status: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

pub fn not_found() -> AppError {
    AppError::new(Code::ExpNotFound, "experiment not found")
}

fn invalid(i: model::Invalid) -> AppError {
    AppError::validation(i.field, i.message)
}

/// A variant as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VariantView {
    pub id: Uuid,
    pub name: String,
    pub content: Content,
    pub is_control: bool,
    pub weight: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ElementView {
    pub id: Uuid,
    pub name: String,
    pub selector: Option<String>,
    pub variants: Vec<VariantView>,
}

/// An experiment as every endpoint that returns one shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExperimentView {
    pub id: Uuid,
    pub seed: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub exp_type: ExpType,
    /// `email` or `push`, for campaigns only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub allocation: Allocation,
    pub status: Status,
    pub traffic_allocation: f64,
    pub target_url: Option<String>,
    pub goal: Option<Goal>,
    pub floor: f64,
    pub burn_in: u64,
    pub elements: Vec<ElementView>,
    pub winner_variant_id: Option<Uuid>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub archived_at: Option<String>,
}

impl From<&model::Experiment> for ExperimentView {
    fn from(e: &model::Experiment) -> ExperimentView {
        let elements = e
            .elements
            .iter()
            .map(|el| ElementView {
                id: el.id,
                name: el.name.clone(),
                selector: el.selector.clone(),
                variants: el
                    .variants
                    .iter()
                    .map(|v| VariantView {
                        id: v.id,
                        name: v.name.clone(),
                        content: v.content.clone(),
                        is_control: v.is_control,
                        weight: v.weight,
                    })
                    .collect(),
            })
            .collect();
        ExperimentView {
            id: e.id,
            seed: e.seed.clone(),
            name: e.name.clone(),
            description: e.description.clone(),
            exp_type: e.exp_type,
            channel: e.channel,
            allocation: e.allocation,
            status: e.status,
            traffic_allocation: e.traffic_allocation,
            target_url: e.target_url.clone(),
            goal: e.goal.clone(),
            floor: e.floor,
            burn_in: e.burn_in,
            elements,
            winner_variant_id: e.winner_variant_id,
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
            started_at: e.started_at.map(rfc3339),
            completed_at: e.completed_at.map(rfc3339),
            archived_at: e.archived_at.map(rfc3339),
        }
    }
}

/// The experiment as the audit trail records it: the same view, as JSON.
fn audit_data(e: &model::Experiment) -> Value {
    serde_json::to_value(ExperimentView::from(e)).unwrap_or(Value::Null)
}

/// Counts per variant (summed over the arms that contain it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VariantStats {
    pub variant_id: Uuid,
    pub element_id: Uuid,
    pub allocations: u64,
    pub conversions: u64,
    pub conversion_rate: f64,
}

/// Counts per combination of a multi-element experiment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CombinationStats {
    pub arm_id: String,
    pub name: String,
    pub allocations: u64,
    pub conversions: u64,
    pub conversion_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BasicStats {
    pub visitors: u64,
    pub conversions: u64,
    pub variants: Vec<VariantStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combinations: Option<Vec<CombinationStats>>,
}

/// GET /experiments/{id}: the experiment and its counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExperimentDetail {
    #[serde(flatten)]
    pub experiment: ExperimentView,
    pub stats: BasicStats,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Leader {
    pub arm_id: String,
    pub name: String,
    pub prob_best: f64,
}

/// The list view's one-line summary: counts and the current leader.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListSummary {
    pub visitors: u64,
    pub conversions: u64,
    pub leader: Option<Leader>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExperimentListItem {
    #[serde(flatten)]
    pub experiment: ExperimentView,
    pub summary: ListSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExperimentList {
    pub items: Vec<ExperimentListItem>,
    pub total: usize,
}

/// Experiment definitions and their lifecycle.
#[derive(Clone)]
pub struct Experiments {
    store: Store,
    writer: Writer,
    catalog: Arc<Catalog>,
    config: Arc<Config>,
    webhooks: Webhooks,
    notifications: Notifications,
    /// Serialises experiment changes: each reads the current definition, validates and
    /// writes, and two interleaved ones would lose an update.
    exp_writes: Arc<tokio::sync::Mutex<()>>,
}

impl Experiments {
    pub fn new(
        store: Store,
        writer: Writer,
        catalog: Arc<Catalog>,
        config: Arc<Config>,
        webhooks: Webhooks,
        notifications: Notifications,
    ) -> Experiments {
        Experiments {
            store,
            writer,
            catalog,
            config,
            webhooks,
            notifications,
            exp_writes: Default::default(),
        }
    }

    fn defaults(&self) -> Defaults {
        Defaults { floor: self.config.engine.floor, burn_in: self.config.engine.burn_in }
    }

    fn owned(&self, who: &Principal, id: Uuid) -> AppResult<Arc<Entry>> {
        self.catalog.owned(who, id)
    }

    pub async fn create_experiment(
        &self,
        who: &Principal,
        input: ExperimentInput,
    ) -> AppResult<ExperimentView> {
        let _guard = self.exp_writes.lock().await;
        let id = Uuid::new_v4();
        let exp = model::build(input, id, who.id(), now_ms(), &self.defaults(), &mut Uuid::new_v4)
            .map_err(invalid)?;
        let d = Draft::new(who.id(), &who.user.email, "experiment.created")
            .experiment(id)
            .data(audit_data(&exp));
        self.store.put_experiment(exp.clone(), d, vec![]).await?;
        let entry = self.catalog.put(exp);
        tracing::info!(experiment = %id, user = %who.id(), "experiment created");
        Ok(ExperimentView::from(&entry.exp))
    }

    pub fn list_experiments(&self, who: &Principal, q: ListQuery) -> AppResult<ExperimentList> {
        let want = match q.status.as_deref() {
            None | Some("") => None,
            Some("archived") => Some(None),
            Some(s) => Some(Some(Status::parse(s).ok_or_else(|| {
                AppError::validation(
                    "status",
                    "must be draft, running, paused, completed or archived",
                )
            })?)),
        };
        let all: Vec<Arc<Entry>> = self
            .catalog
            .owned_by(who.id())
            .into_iter()
            .filter(|e| match want {
                None => e.visible(),
                Some(None) => !e.visible(),
                Some(Some(s)) => e.visible() && e.exp.status == s,
            })
            .collect();
        let total = all.len();
        let items = all
            .iter()
            .skip(q.offset)
            .take(q.limit)
            .map(|e| ExperimentListItem {
                experiment: ExperimentView::from(&e.exp),
                summary: self.summary(e),
            })
            .collect();
        Ok(ExperimentList { items, total })
    }

    pub fn get_experiment(&self, who: &Principal, id: Uuid) -> AppResult<ExperimentDetail> {
        let e = self.owned(who, id)?;
        Ok(ExperimentDetail {
            experiment: ExperimentView::from(&e.exp),
            stats: self.basic_stats(&e),
        })
    }

    fn basic_stats(&self, e: &Entry) -> BasicStats {
        let snap = self.writer.live().get(e.exp.id);
        let counts = |arm: usize| {
            snap.as_ref()
                .and_then(|s| s.state.arms.get(arm))
                .map(|a| (a.allocations, a.conversions))
                .unwrap_or((0, 0))
        };
        let rate = |a: u64, c: u64| if a == 0 { 0.0 } else { c as f64 / a as f64 };
        let arms = e.exp.arms();
        // Per variant: sum over the arms that contain it.
        let mut variants = Vec::new();
        for (ei, el) in e.exp.elements.iter().enumerate() {
            for (vi, var) in el.variants.iter().enumerate() {
                let (mut a, mut c) = (0, 0);
                for arm in arms.iter().filter(|arm| arm.variant_indices[ei] == vi) {
                    let (x, y) = counts(arm.index);
                    a += x;
                    c += y;
                }
                variants.push(VariantStats {
                    variant_id: var.id,
                    element_id: el.id,
                    allocations: a,
                    conversions: c,
                    conversion_rate: rate(a, c),
                });
            }
        }
        let (visitors, conversions) =
            snap.as_ref().map(|s| (s.state.visitors(), s.state.conversions())).unwrap_or((0, 0));
        let combinations = (e.exp.elements.len() > 1).then(|| {
            arms.iter()
                .map(|arm| {
                    let (a, c) = counts(arm.index);
                    CombinationStats {
                        arm_id: arm.id.clone(),
                        name: arm.name.clone(),
                        allocations: a,
                        conversions: c,
                        conversion_rate: rate(a, c),
                    }
                })
                .collect()
        });
        BasicStats { visitors, conversions, variants, combinations }
    }

    fn summary(&self, e: &Entry) -> ListSummary {
        let Some(snap) = self.writer.live().get(e.exp.id) else {
            return ListSummary { visitors: 0, conversions: 0, leader: None };
        };
        let posts: Vec<_> = snap
            .state
            .arms
            .iter()
            .map(|a| crate::engine::stats::BetaPosterior::from_counts(a.allocations, a.conversions))
            .collect();
        let leader = if snap.state.visitors() == 0 || posts.len() > 64 {
            None
        } else {
            let pb = crate::engine::stats::prob_best(&posts);
            pb.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, p)| {
                let arm = e.exp.arm(i);
                Leader { arm_id: arm.id, name: arm.name, prob_best: *p }
            })
        };
        ListSummary {
            visitors: snap.state.visitors(),
            conversions: snap.state.conversions(),
            leader,
        }
    }

    pub async fn patch_experiment(
        &self,
        who: &Principal,
        id: Uuid,
        input: ExperimentInput,
    ) -> AppResult<ExperimentView> {
        let _guard = self.exp_writes.lock().await;
        let e = self.owned(who, id)?;
        if e.exp.archived_at.is_some() {
            return Err(AppError::new(Code::InvalidTransition, "the experiment is archived"));
        }
        if input.touches_structure() && e.exp.status != Status::Draft {
            return Err(AppError::new(
                Code::ExpNotDraft,
                format!(
                    "the experiment is {}; its variants, elements, type, allocation and seed \
                     are fixed once it leaves draft",
                    e.exp.status.as_str()
                ),
            )
            .with_details(json!({"status": e.exp.status})));
        }
        let reregister = input.touches_allocation() && e.exp.status != Status::Draft;
        let mut exp = e.exp.clone();
        model::apply(&mut exp, input, &mut Uuid::new_v4).map_err(invalid)?;
        exp.updated_at = now_ms();
        if reregister {
            // The writer refreshes weights with the new floor and burn-in from now on.
            self.writer.register(id, Entry::new(exp.clone()).meta()).await?;
        }
        let d = Draft::new(who.id(), &who.user.email, "experiment.edited")
            .experiment(id)
            .data(audit_data(&exp));
        self.store.put_experiment(exp.clone(), d, vec![]).await?;
        let entry = self.catalog.put(exp);
        Ok(ExperimentView::from(&entry.exp))
    }

    pub async fn transition(
        &self,
        who: &Principal,
        id: Uuid,
        t: Transition,
        winner: Option<Uuid>,
    ) -> AppResult<ExperimentView> {
        let _guard = self.exp_writes.lock().await;
        let e = self.owned(who, id)?;
        if e.exp.archived_at.is_some() {
            return Err(AppError::new(Code::InvalidTransition, "the experiment is archived"));
        }
        let Some(next) = t.apply(e.exp.status) else {
            return Err(AppError::new(
                Code::InvalidTransition,
                format!("cannot {} an experiment that is {}", t.as_str(), e.exp.status.as_str()),
            )
            .with_details(json!({"status": e.exp.status})));
        };
        if let Some(w) = winner
            && !e.exp.has_variant(w)
            && !e.exp.arms().iter().any(|a| a.id == w.to_string())
        {
            return Err(AppError::validation(
                "winner_variant_id",
                "is not a variant (or combination) of this experiment",
            ));
        }
        let mut exp = e.exp.clone();
        let now = now_ms();
        exp.status = next;
        exp.updated_at = now;
        match t {
            Transition::Start => exp.started_at = Some(now),
            Transition::Complete => {
                exp.completed_at = Some(now);
                exp.winner_variant_id = winner;
            }
            _ => {}
        }
        let action = match t {
            Transition::Start => "experiment.started",
            Transition::Pause => "experiment.paused",
            Transition::Resume => "experiment.resumed",
            Transition::Complete => "experiment.completed",
        };
        let data = json!({"status": next, "winner_variant_id": exp.winner_variant_id});
        let d = Draft::new(who.id(), &who.user.email, action).experiment(id).data(data.clone());
        let events = self.webhooks.deliveries(who.id(), action, id, &data)?;
        let queued = events.len();
        if t == Transition::Start {
            // The writer must know the experiment before the first visitor can arrive.
            self.writer.register(id, Entry::new(exp.clone()).meta()).await?;
        }
        // The email goes in the same transaction as the change and its webhook deliveries.
        let emails = self.notifications.emails(action, &exp, None)?;
        let emailed =
            match self.store.put_experiment_notifying(exp.clone(), d, events, emails).await {
                Ok(n) => n,
                Err(e) => {
                    if t == Transition::Start {
                        let _ = self.writer.forget(id).await;
                    }
                    return Err(e.into());
                }
            };
        let entry = self.catalog.put(exp);
        tracing::info!(experiment = %id, status = next.as_str(), "experiment {}", t.as_str());
        self.webhooks.deliveries_queued(queued);
        self.notifications.queued(emailed);
        Ok(ExperimentView::from(&entry.exp))
    }

    /// Archives (soft), or with `hard` deletes a draft for good.
    pub async fn delete_experiment(&self, who: &Principal, id: Uuid, hard: bool) -> AppResult<()> {
        let _guard = self.exp_writes.lock().await;
        let e = self.owned(who, id)?;
        if hard {
            if e.exp.status != Status::Draft {
                return Err(AppError::new(
                    Code::ExpNotDraft,
                    format!("only a draft can be deleted; this one is {}", e.exp.status.as_str()),
                )
                .with_details(json!({"status": e.exp.status})));
            }
            self.writer.forget(id).await?;
            let d = Draft::new(who.id(), &who.user.email, "experiment.deleted").experiment(id);
            self.store.delete_experiment(id, d).await?;
            self.catalog.remove(id);
            tracing::info!(experiment = %id, "experiment deleted");
            return Ok(());
        }
        if e.exp.archived_at.is_some() {
            return Ok(());
        }
        let mut exp = e.exp.clone();
        exp.archived_at = Some(now_ms());
        exp.updated_at = now_ms();
        let d = Draft::new(who.id(), &who.user.email, "experiment.archived").experiment(id);
        let events = self.webhooks.deliveries(who.id(), "experiment.archived", id, &json!({}))?;
        let queued = events.len();
        self.store.put_experiment(exp.clone(), d, events).await?;
        self.catalog.put(exp);
        tracing::info!(experiment = %id, "experiment archived");
        self.webhooks.deliveries_queued(queued);
        Ok(())
    }
}
