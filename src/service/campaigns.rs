//! Campaigns: waves of email or push recipients, each assigned through the tracker's batch
//! path (the same allocator, the same writer), and the opens and clicks that come back
//! through signed pixel and link URLs, recorded as conversions by the writer's counting
//! rules, once per recipient and goal.

use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::Principal;
use super::catalog::{Catalog, Entry};
use super::tracker::{Tracker, check_user_id};
use super::{PublicUrl, blocking, now_ms};
use crate::engine::campaign::{self, Kind, MAX_RECIPIENTS, Token};
use crate::engine::model::{Content, ExpType, Goal, Status};
use crate::error::{AppError, AppResult, Code};
use crate::store::PRIMARY_GOAL;
use crate::store::Store;
use crate::store::api::RecordStore;
use crate::store::campaigns::{self as waves, CampaignStore, NewWave, WaveRec};
use crate::store::writer::Writer;

/// One recipient of a wave: what to send them and the URLs to send it with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaveRecipient {
    pub user_id: String,
    pub variant_id: Uuid,
    pub variant_name: String,
    /// For a campaign: `text` is the subject line (or push title), `html` the body.
    pub content: Content,
    /// A 1×1 GIF whose loading records an open.
    pub open_url: String,
    /// The wave's links in the order given, each rewritten to record a click and redirect.
    pub links: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaveVariant {
    pub variant_id: Uuid,
    pub variant_name: String,
    pub recipients: u64,
}

/// The answer to POST /experiments/{id}/waves.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaveAnswer {
    pub experiment_id: Uuid,
    /// The wave's number: 1 for the first.
    pub wave: u32,
    pub sent_at: String,
    /// Recipients per variant in this wave.
    pub variants: Vec<WaveVariant>,
    pub recipients: Vec<WaveRecipient>,
}

/// One wave as the dashboard lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaveSummary {
    pub wave: u32,
    pub sent_at: String,
    pub recipients: u64,
    /// Recipients not sent to before (the others kept their variant).
    pub new_recipients: u64,
    pub links: Vec<String>,
    pub variants: Vec<WaveVariant>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaveList {
    pub items: Vec<WaveSummary>,
    pub total: usize,
}

#[derive(Clone)]
pub struct Campaigns {
    store: Store,
    writer: Writer,
    catalog: Arc<Catalog>,
    tracker: Tracker,
    public_url: PublicUrl,
    key: Arc<[u8; 32]>,
}

fn not_a_campaign(entry: &Entry) -> AppError {
    let t = serde_json::to_value(entry.exp.exp_type).unwrap_or_default();
    AppError::new(
        Code::ExpNotCampaign,
        format!("the experiment is of type {t}, not a campaign; waves are for campaigns"),
    )
    .with_details(json!({"type": t}))
}

fn invalid_token() -> AppError {
    AppError::new(Code::InvalidToken, "this link is not one Samplit made")
}

fn variants_of(entry: &Entry, arms: &[u64]) -> Vec<WaveVariant> {
    let vs = entry.exp.elements.first().map(|e| e.variants.as_slice()).unwrap_or(&[]);
    vs.iter()
        .enumerate()
        .map(|(i, v)| WaveVariant {
            variant_id: v.id,
            variant_name: v.name.clone(),
            recipients: arms.get(i).copied().unwrap_or(0),
        })
        .collect()
}

/// The conversion keys a pixel load or a click records. A click proves the message was
/// opened (images are often blocked), so for an open goal it counts as the open too.
fn goal_keys(goal: Option<&Goal>, kind: Kind) -> &'static [&'static str] {
    match (kind, goal) {
        (Kind::Open, Some(Goal::Open) | None) => &[PRIMARY_GOAL],
        (Kind::Open, _) => &["open"],
        (Kind::Click, Some(Goal::Click { .. })) => &[PRIMARY_GOAL],
        (Kind::Click, Some(Goal::Open) | None) => &[PRIMARY_GOAL, "click"],
        (Kind::Click, _) => &["click"],
    }
}

impl Campaigns {
    pub fn new(
        store: Store,
        writer: Writer,
        catalog: Arc<Catalog>,
        tracker: Tracker,
        public_url: PublicUrl,
        key: [u8; 32],
    ) -> Campaigns {
        Campaigns { store, writer, catalog, tracker, public_url, key: Arc::new(key) }
    }

    fn campaign(&self, who: &Principal, exp: Uuid) -> AppResult<Arc<Entry>> {
        let entry = self.catalog.owned(who, exp)?;
        if entry.exp.archived_at.is_some() {
            return Err(super::experiments::not_found());
        }
        if entry.exp.exp_type != ExpType::Campaign {
            return Err(not_a_campaign(&entry));
        }
        Ok(entry)
    }

    /// POST /experiments/{id}/waves. Validates everything before any assignment is made,
    /// so a refused wave changes nothing.
    pub async fn send_wave(
        &self,
        who: &Principal,
        exp: Uuid,
        recipients: Vec<String>,
        links: Vec<String>,
    ) -> AppResult<WaveAnswer> {
        if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
            return Err(AppError::validation(
                "recipients",
                format!("needs 1 to {MAX_RECIPIENTS} recipient ids, got {}", recipients.len()),
            ));
        }
        let mut seen = HashSet::with_capacity(recipients.len());
        for (i, r) in recipients.iter().enumerate() {
            check_user_id(&format!("recipients[{i}]"), r)?;
            if !seen.insert(r.as_str()) {
                return Err(AppError::validation(
                    format!("recipients[{i}]"),
                    "appears twice in this wave",
                ));
            }
        }
        campaign::check_links(&links).map_err(|e| AppError::validation(e.field, e.message))?;
        let entry = self.campaign(who, exp)?;
        if entry.exp.status != Status::Running {
            return Err(AppError::new(
                Code::ExpNotRunning,
                format!("the experiment is {}, not running", entry.exp.status.as_str()),
            )
            .with_details(json!({"status": entry.exp.status})));
        }
        // Who was sent to before, for the wave's record; the batch path keeps their variant.
        let (store, ids) = (self.store.clone(), recipients.clone());
        let returning = blocking(move || {
            let mut n = 0u64;
            for r in &ids {
                n += u64::from(store.assignment(exp, r)?.is_some());
            }
            Ok(n)
        })
        .await?;
        let batch = self.tracker.assign_batch(who.id(), None, exp, &recipients).await?;
        let mut arms = vec![0u64; entry.exp.arm_count()];
        let mut chosen = Vec::with_capacity(batch.assignments.len());
        for item in batch.assignments {
            // A campaign has one element and takes every recipient, so each item has
            // exactly one variant; anything else is the server's fault.
            let v = item.variants.into_iter().next().ok_or_else(|| {
                AppError::internal(format!("recipient {} got no variant", item.user_id))
            })?;
            let arm = entry
                .exp
                .find_arm_by_variant(v.variant_id)
                .ok_or_else(|| AppError::internal("a variant outside the experiment"))?;
            arms[arm] += 1;
            chosen.push((item.user_id, v));
        }
        let new = NewWave {
            at: now_ms(),
            links: links.clone(),
            arms: arms.clone(),
            new_recipients: recipients.len() as u64 - returning,
        };
        let rec = self
            .writer
            .exec(move |ctx| {
                let rec = waves::insert_wave(ctx.store, exp, new)?;
                Ok(serde_json::to_value(rec).unwrap_or_default())
            })
            .await?;
        let rec: WaveRec = serde_json::from_value(rec)
            .map_err(|e| AppError::internal(format!("wave record: {e}")))?;
        let base = self.public_url.get();
        let recipients = chosen
            .into_iter()
            .map(|(user_id, v)| {
                let token = |kind, link| {
                    Token {
                        kind,
                        experiment: exp,
                        wave: rec.wave,
                        link,
                        recipient: user_id.clone(),
                    }
                    .sign(&self.key)
                };
                let open_url = format!("{base}/o/{}.gif", token(Kind::Open, 0));
                let links = (0..links.len())
                    .map(|i| format!("{base}/c/{}", token(Kind::Click, i as u16)))
                    .collect();
                WaveRecipient {
                    variant_id: v.variant_id,
                    variant_name: v.variant_name,
                    content: v.content,
                    open_url,
                    links,
                    user_id,
                }
            })
            .collect();
        Ok(WaveAnswer {
            experiment_id: exp,
            wave: rec.wave,
            sent_at: super::rfc3339(rec.at),
            variants: variants_of(&entry, &rec.arms),
            recipients,
        })
    }

    /// GET /experiments/{id}/waves: every wave, oldest first.
    pub fn list_waves(&self, who: &Principal, exp: Uuid) -> AppResult<WaveList> {
        let entry = self.campaign(who, exp)?;
        let items: Vec<WaveSummary> = self
            .store
            .waves(exp)?
            .into_iter()
            .map(|w| WaveSummary {
                wave: w.wave,
                sent_at: super::rfc3339(w.at),
                recipients: w.arms.iter().sum(),
                new_recipients: w.new_recipients,
                variants: variants_of(&entry, &w.arms),
                links: w.links,
            })
            .collect();
        Ok(WaveList { total: items.len(), items })
    }

    fn verified(&self, text: &str, kind: Kind) -> AppResult<(Token, Arc<Entry>)> {
        let token = Token::verify(&self.key, text).filter(|t| t.kind == kind);
        let token = token.ok_or_else(invalid_token)?;
        let entry = self.catalog.get(token.experiment).ok_or_else(invalid_token)?;
        Ok((token, entry))
    }

    /// Records an open or a click, at most once per recipient and goal (the writer
    /// answers a repeat as a duplicate). Nothing is counted once the campaign has ended.
    async fn record(&self, entry: &Entry, token: &Token) -> AppResult<()> {
        if !matches!(entry.exp.status, Status::Running | Status::Paused)
            || entry.exp.archived_at.is_some()
        {
            return Ok(());
        }
        for key in goal_keys(entry.exp.goal.as_ref(), token.kind) {
            self.writer
                .convert(entry.exp.id, token.recipient.clone(), key.to_string(), None, now_ms())
                .await?;
        }
        Ok(())
    }

    /// GET /o/{token}.gif.
    pub async fn open(&self, token: &str) -> AppResult<()> {
        let (token, entry) = self.verified(token, Kind::Open)?;
        self.record(&entry, &token).await
    }

    /// GET /c/{token}: the link this token was made for, after recording the click.
    pub async fn click(&self, token: &str) -> AppResult<String> {
        let (token, entry) = self.verified(token, Kind::Click)?;
        let (store, exp, n) = (self.store.clone(), token.experiment, token.wave);
        let wave = blocking(move || Ok(store.wave(exp, n)?)).await?.ok_or_else(invalid_token)?;
        let link = wave.links.get(usize::from(token.link)).cloned().ok_or_else(invalid_token)?;
        // The reader should reach the link even when the count cannot be written now.
        if let Err(e) = self.record(&entry, &token).await {
            tracing::warn!(experiment = %exp, error = %e.message, "campaign click not recorded");
        }
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_also_counts_as_the_open_an_open_goal_waits_for() {
        let click = Goal::Click { selector: String::new() };
        assert_eq!(goal_keys(Some(&Goal::Open), Kind::Open), &[PRIMARY_GOAL]);
        assert_eq!(goal_keys(Some(&Goal::Open), Kind::Click), &[PRIMARY_GOAL, "click"]);
        assert_eq!(goal_keys(Some(&click), Kind::Click), &[PRIMARY_GOAL]);
        assert_eq!(goal_keys(Some(&click), Kind::Open), &["open"]);
    }
}
