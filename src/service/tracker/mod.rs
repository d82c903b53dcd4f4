//! The hot path: sticky assignment, adaptive or fixed bucketing, conversions.
//! A returning visitor costs one in-memory catalog lookup and one redb read; a new one adds
//! a hash and a place in the writer's next group commit.

use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

use super::catalog::{Catalog, Entry};
use super::{PublicUrl, now_ms};
use crate::store::Store;
use crate::store::api::RecordStore;
use crate::store::writer::Writer;

pub mod sticky;
use crate::engine::allocator;
use crate::engine::model::{Allocation, Content, Experiment, Goal, Status};
use crate::error::{AppError, AppResult, Code};
use crate::store::PRIMARY_GOAL;
use crate::store::records::AssignmentRec;
use crate::store::writer::{AssignOutcome, ConvertOutcome};

pub const MAX_BATCH: usize = 10_000;

/// What tracker.js applies to one element.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AssignedVariant {
    pub element_id: Uuid,
    pub element_name: String,
    pub selector: Option<String>,
    pub variant_id: Uuid,
    pub variant_name: String,
    pub content: Content,
}

/// What an arm changes on the page, element by element.
pub fn assigned_variants(exp: &Experiment, arm: usize) -> Vec<AssignedVariant> {
    exp.arm_variants(arm)
        .iter()
        .zip(&exp.elements)
        .map(|(&v, e)| {
            let var = &e.variants[v];
            AssignedVariant {
                element_id: e.id,
                element_name: e.name.clone(),
                selector: e.selector.clone(),
                variant_id: var.id,
                variant_name: var.name.clone(),
                content: var.content.clone(),
            }
        })
        .collect()
}

/// What `/t/{site_key}.js` sets before the tracker runs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SiteSettings<'a> {
    endpoint: String,
    site_key: &'a str,
    /// The selectors of running experiments, hidden until their variants are applied.
    hide: Vec<&'a str>,
    timeout: u32,
}

/// Why an answer carries no assignment of its own.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignStatus {
    /// `fallback: true` on an experiment that is not running: the control, nothing stored.
    NotRunning,
}

/// The answer to POST /tracker/assign for one experiment. The hot path renders this shape
/// as text from pre-rendered parts (see `render`): serialising the struct per request cost
/// a measurable share of a sticky hit; `tests/openapi.rs` checks the text against it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    pub experiment_id: Uuid,
    /// Null only for a fallback answer.
    pub assignment_id: Option<Uuid>,
    pub new: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AssignStatus>,
    pub variants: Vec<AssignedVariant>,
    /// True for a visitor outside the traffic share (then `variants` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<bool>,
    pub goal: Option<Goal>,
}

/// The answer to POST /tracker/assign by page URL.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PageAssignments {
    pub assignments: Vec<Assignment>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    pub user_id: String,
    pub assignment_id: Uuid,
    pub variants: Vec<AssignedVariant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchAssignments {
    pub experiment_id: Uuid,
    pub assignments: Vec<BatchItem>,
}

/// Why a conversion was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotRecorded {
    /// This user already converted on this goal.
    Duplicate,
    /// The user is outside the experiment's traffic share.
    Excluded,
    /// The experiment has ended; tracker.js may still report goals it remembers.
    NotRunning,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConvertAnswer {
    pub recorded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<NotRecorded>,
}

impl ConvertAnswer {
    fn recorded() -> ConvertAnswer {
        ConvertAnswer { recorded: true, reason: None }
    }

    fn not(reason: NotRecorded) -> ConvertAnswer {
        ConvertAnswer { recorded: false, reason: Some(reason) }
    }
}

pub fn check_user_id(field: &str, u: &str) -> AppResult<()> {
    let n = u.chars().count();
    if n == 0 || n > 128 || crate::engine::text::check_label(field, u).is_err() {
        return Err(AppError::validation(field, "must be 1 to 128 printable characters"));
    }
    Ok(())
}

/// `*` matches any run of characters; the pattern must match the whole URL.
pub fn url_matches(pattern: &str, url: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == url;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !url.starts_with(first) || url.len() < first.len() + last.len() || !url.ends_with(last) {
        return false;
    }
    let mut rest = &url[first.len()..url.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn render(entry: &Entry, rec: &AssignmentRec, new: bool) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "{{\"experiment_id\":\"{}\",\"assignment_id\":\"{}\",\"new\":{},",
        entry.exp.id,
        Uuid::from_u128(rec.id),
        new
    );
    match entry.arm_json.get(usize::from(rec.arm)) {
        Some(variants) if !rec.excluded() => {
            let _ = write!(s, "\"variants\":{variants}");
        }
        _ => s.push_str("\"variants\":[],\"excluded\":true"),
    }
    let _ = write!(s, ",\"goal\":{}}}", entry.goal_json);
    s
}

/// The control's variants, for `fallback: true` on an experiment that is not running.
fn render_fallback(entry: &Entry) -> String {
    let control = entry.exp.control_arm();
    format!(
        "{{\"experiment_id\":\"{}\",\"assignment_id\":null,\"new\":false,\"status\":\"not_running\",\"variants\":{},\"goal\":{}}}",
        entry.exp.id,
        entry.arm_json.get(control).map(String::as_str).unwrap_or("[]"),
        entry.goal_json
    )
}

/// The hot path: what tracker.js asks of the server.
#[derive(Clone)]
pub struct Tracker {
    store: Store,
    writer: Writer,
    catalog: Arc<Catalog>,
    sticky: Arc<sticky::StickyCache>,
    public_url: PublicUrl,
}

impl Tracker {
    pub fn new(
        store: Store,
        writer: Writer,
        catalog: Arc<Catalog>,
        public_url: PublicUrl,
        sticky_entries: usize,
    ) -> Tracker {
        let sticky = Arc::new(sticky::StickyCache::new(sticky_entries));
        Tracker { store, writer, catalog, sticky, public_url }
    }

    pub fn site_owner(&self, site_key: &str) -> AppResult<Uuid> {
        self.catalog
            .site_owner(site_key)
            .ok_or_else(|| AppError::new(Code::InvalidSiteKey, "unknown site key"))
    }

    fn tracked(&self, owner: Uuid, exp: Uuid) -> AppResult<Arc<Entry>> {
        self.catalog
            .get(exp)
            .filter(|e| e.exp.owner == owner && e.exp.archived_at.is_none())
            .ok_or_else(|| AppError::new(Code::ExpNotFound, "experiment not found"))
    }

    fn not_running(entry: &Entry) -> AppError {
        AppError::new(
            Code::ExpNotRunning,
            format!("the experiment is {}, not running", entry.exp.status.as_str()),
        )
        .with_details(json!({"status": entry.exp.status}))
    }

    /// The weights a new visitor is bucketed against now.
    fn current_weights(&self, entry: &Entry) -> AppResult<Arc<allocator::Weights>> {
        if entry.exp.allocation == Allocation::Fixed {
            return Ok(entry.fixed.clone());
        }
        self.writer.live().get(entry.exp.id).map(|s| s.weights.clone()).ok_or_else(|| {
            AppError::new(
                Code::StateUnreadable,
                format!(
                    "experiment {} has no usable bandit state; run `samplit repair`",
                    entry.exp.id
                ),
            )
        })
    }

    /// The stored assignment, from the cache or the store (which then fills the cache).
    fn sticky(&self, exp: Uuid, user_id: &str) -> AppResult<Option<AssignmentRec>> {
        if let Some(rec) = self.sticky.get(exp, user_id) {
            return Ok(Some(rec));
        }
        let rec = self.store.assignment(exp, user_id)?;
        if let Some(r) = rec {
            self.sticky.put(exp, user_id, r);
        }
        Ok(rec)
    }

    async fn assign_entry(&self, entry: &Entry, user_id: &str) -> AppResult<String> {
        if let Some(rec) = self.sticky(entry.exp.id, user_id)? {
            return Ok(render(entry, &rec, false));
        }
        let weights = self.current_weights(entry)?;
        let arm =
            allocator::decide(&entry.exp.seed, user_id, &weights.w, entry.exp.traffic_allocation);
        let out =
            self.writer.assign(entry.exp.id, user_id.to_string(), arm, weights, now_ms()).await?;
        Ok(render(entry, out.record(), matches!(out, AssignOutcome::New(_))))
    }

    /// POST /tracker/assign with an experiment id. Returns the JSON text of the answer.
    pub async fn assign(
        &self,
        site_key: &str,
        exp: Uuid,
        user_id: &str,
        fallback: bool,
    ) -> AppResult<String> {
        check_user_id("user_id", user_id)?;
        let owner = self.site_owner(site_key)?;
        let entry = self.tracked(owner, exp)?;
        if entry.exp.status != Status::Running {
            if fallback {
                return Ok(render_fallback(&entry));
            }
            return Err(Self::not_running(&entry));
        }
        self.assign_entry(&entry, user_id).await
    }

    /// POST /tracker/assign with a page URL: every running experiment whose target matches.
    pub async fn assign_page(&self, site_key: &str, user_id: &str, url: &str) -> AppResult<String> {
        check_user_id("user_id", user_id)?;
        if url.len() > 4096 {
            return Err(AppError::validation("url", "must be at most 4096 characters"));
        }
        let owner = self.site_owner(site_key)?;
        // Every new assignment is sent to the writer before any is awaited, so a new visitor
        // on a page with several experiments waits for one group commit, not one each.
        let mut parts = Vec::new();
        for entry in self.catalog.running_for(owner) {
            if !entry.exp.target_url.as_deref().is_none_or(|p| url_matches(p, url)) {
                continue;
            }
            if let Some(rec) = self.sticky(entry.exp.id, user_id)? {
                parts.push((entry, Ok(rec)));
                continue;
            }
            let weights = match self.current_weights(&entry) {
                Ok(w) => w,
                Err(e) => {
                    // One experiment with a broken state must not blank the others.
                    tracing::error!(experiment = %entry.exp.id, "{}", e.message);
                    continue;
                }
            };
            let arm = allocator::decide(
                &entry.exp.seed,
                user_id,
                &weights.w,
                entry.exp.traffic_allocation,
            );
            let (w, id, user) = (self.writer.clone(), entry.exp.id, user_id.to_string());
            let pending =
                tokio::spawn(async move { w.assign(id, user, arm, weights, now_ms()).await });
            parts.push((entry, Err(pending)));
        }
        let mut out = String::from("{\"assignments\":[");
        let mut first = true;
        for (entry, part) in parts {
            let one = match part {
                Ok(rec) => render(&entry, &rec, false),
                Err(handle) => {
                    let result = handle
                        .await
                        .map_err(|e| AppError::internal(format!("assign task failed: {e}")))?
                        .map_err(AppError::from);
                    match result {
                        Ok(outcome) => {
                            self.sticky.put(entry.exp.id, user_id, *outcome.record());
                            render(
                                &entry,
                                outcome.record(),
                                matches!(outcome, AssignOutcome::New(_)),
                            )
                        }
                        Err(e) if matches!(e.code, Code::StateUnreadable | Code::ExpNotRunning) => {
                            tracing::error!(experiment = %entry.exp.id, "{}", e.message);
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&one);
        }
        out.push_str("]}");
        Ok(out)
    }

    /// POST /tracker/assign/batch: many visitors of one experiment, for email and push.
    /// Called by the authenticated `owner` (the public site key alone would let anyone fill
    /// the store); a `site_key`, if given, must be theirs.
    pub async fn assign_batch(
        &self,
        owner: Uuid,
        site_key: Option<&str>,
        exp: Uuid,
        user_ids: &[String],
    ) -> AppResult<BatchAssignments> {
        if user_ids.is_empty() || user_ids.len() > MAX_BATCH {
            return Err(AppError::validation("user_ids", format!("needs 1 to {MAX_BATCH} ids")));
        }
        for (i, u) in user_ids.iter().enumerate() {
            check_user_id(&format!("user_ids[{i}]"), u)?;
        }
        let entry = self.tracked(owner, exp)?;
        if let Some(key) = site_key
            && self.catalog.site_owner(key) != Some(owner)
        {
            return Err(AppError::validation("site_key", "is not the caller's site key"));
        }
        if entry.exp.status != Status::Running {
            return Err(Self::not_running(&entry));
        }
        let weights = self.current_weights(&entry)?;
        let now = now_ms();
        let mut pending = Vec::with_capacity(user_ids.len());
        for u in user_ids {
            match self.sticky(exp, u)? {
                Some(rec) => pending.push((u, Ok(rec))),
                None => {
                    let arm = allocator::decide(
                        &entry.exp.seed,
                        u,
                        &weights.w,
                        entry.exp.traffic_allocation,
                    );
                    // Send them all before awaiting any, so they share group commits.
                    let w = self.writer.clone();
                    let (user, weights) = (u.clone(), weights.clone());
                    let fut = async move { w.assign(exp, user, arm, weights, now).await };
                    pending.push((u, Err(tokio::spawn(fut))));
                }
            }
        }
        let mut items = Vec::with_capacity(pending.len());
        for (u, p) in pending {
            let rec = match p {
                Ok(rec) => rec,
                Err(handle) => *handle
                    .await
                    .map_err(|e| AppError::internal(format!("assign task failed: {e}")))??
                    .record(),
            };
            let variants = if rec.excluded() {
                Vec::new()
            } else {
                assigned_variants(&entry.exp, usize::from(rec.arm))
            };
            items.push(BatchItem {
                user_id: u.clone(),
                assignment_id: Uuid::from_u128(rec.id),
                variants,
                excluded: rec.excluded().then_some(true),
            });
        }
        Ok(BatchAssignments { experiment_id: exp, assignments: items })
    }

    /// POST /tracker/convert.
    pub async fn convert(
        &self,
        site_key: &str,
        exp: Uuid,
        user_id: &str,
        value: Option<f64>,
        goal: Option<&str>,
    ) -> AppResult<ConvertAnswer> {
        check_user_id("user_id", user_id)?;
        use crate::engine::counting::MAX_VALUE;
        if let Some(v) = value
            && !(v.is_finite() && v.abs() <= MAX_VALUE)
        {
            return Err(AppError::validation(
                "value",
                format!("must be a finite number from -{MAX_VALUE:e} to {MAX_VALUE:e}"),
            ));
        }
        if let Some(g) = goal {
            check_user_id("goal", g)?;
        }
        let owner = self.site_owner(site_key)?;
        let Some(entry) = self.catalog.get(exp).filter(|e| e.exp.owner == owner) else {
            return Err(AppError::new(Code::ExpNotFound, "experiment not found"));
        };
        // Visitors keep converting on pages a while after an experiment ends (tracker.js
        // remembers goals); that is not an error the page should see in its console.
        if !matches!(entry.exp.status, Status::Running | Status::Paused)
            || entry.exp.archived_at.is_some()
        {
            return Ok(ConvertAnswer::not(NotRecorded::NotRunning));
        }
        // A goal that names the experiment's own goal (or none at all) is the primary one;
        // any other is kept apart and does not move the posterior.
        let key = match (goal, &entry.exp.goal) {
            (None, _) | (Some(_), None) => PRIMARY_GOAL.to_string(),
            (Some(g), Some(eg)) if eg.key() == g => PRIMARY_GOAL.to_string(),
            (Some(g), Some(_)) => g.to_string(),
        };
        if self.sticky(exp, user_id)?.is_none() {
            return Err(not_assigned());
        }
        let out = self.writer.convert(exp, user_id.to_string(), key, value, now_ms()).await?;
        Ok(match out {
            ConvertOutcome::Recorded => ConvertAnswer::recorded(),
            ConvertOutcome::Duplicate => ConvertAnswer::not(NotRecorded::Duplicate),
            ConvertOutcome::Excluded => ConvertAnswer::not(NotRecorded::Excluded),
            ConvertOutcome::NotAssigned => return Err(not_assigned()),
        })
    }

    /// The body of `/t/{site_key}.js`: the site's settings, including the selectors to hide
    /// before first paint, then the tracker itself, in one synchronous response.
    pub fn site_script(&self, site_key: &str, tracker_js: &str) -> Option<String> {
        let owner = self.catalog.site_owner(site_key)?;
        let mut hide: Vec<&str> = Vec::new();
        let running = self.catalog.running_for(owner);
        for e in &running {
            for el in &e.exp.elements {
                if let Some(s) = el.selector.as_deref()
                    && !hide.contains(&s)
                {
                    hide.push(s);
                }
            }
        }
        let settings =
            SiteSettings { endpoint: self.public_url.get(), site_key, hide, timeout: 1500 };
        // `</` inside a JSON string could end an inline script; escape it defensively.
        let settings = serde_json::to_string(&settings).unwrap_or_default().replace("</", "<\\/");
        Some(format!("window.__samplit={settings};\n{tracker_js}"))
    }
}

fn not_assigned() -> AppError {
    AppError::new(Code::AssignmentNotFound, "this user was never assigned to the experiment")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_patterns() {
        assert!(url_matches("https://shop.example/*", "https://shop.example/a/b"));
        assert!(url_matches("*", "anything"));
        assert!(url_matches("https://*.example/p*", "https://www.example/pricing"));
        assert!(!url_matches("https://shop.example/*", "https://other.example/"));
        assert!(!url_matches("https://a/x", "https://a/x/y"));
        assert!(url_matches("https://a/*/c", "https://a/b/c"));
        assert!(!url_matches("ab*ba", "aba"));
    }

    #[test]
    fn user_ids() {
        assert!(check_user_id("u", "abc").is_ok());
        assert!(check_user_id("u", "").is_err());
        assert!(check_user_id("u", &"x".repeat(129)).is_err());
        assert!(check_user_id("u", "a\nb").is_err());
        assert!(check_user_id("u", "a\u{202E}b").is_err(), "bidi overrides too");
    }
}
