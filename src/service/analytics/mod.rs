//! Results of an experiment from its live counters (never a scan of its records): posteriors,
//! exact probability of being best, expected loss, intervals, lift, SRM, an adjusted rate that
//! corrects for adaptive allocation, the recommendation, and per-element main effects.
//! The maths is in the engine (`stats`, `decision`); this module gathers it into the typed
//! answers of the API.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::accounts::Principal;
use super::catalog::Catalog;
use super::rfc3339;
use crate::config::Config;
use crate::store::Store;
use crate::store::api::RecordStore;
use crate::store::writer::Writer;
use std::sync::Arc;

pub mod simulate;
use crate::engine::counting;
use crate::engine::decision::{self, Decision, DecisionRule, ElementEffects, Thresholds, rate};
use crate::engine::model::Arm;
use crate::engine::model::{Allocation, ExpType, Experiment, Status};
use crate::engine::sequential::{self, Sequential};
use crate::engine::stats::{self, BetaPosterior};
use crate::error::{AppError, AppResult};
use crate::store::records::BanditState;

/// Above this many arms the exact quadrature is skipped in the timeseries (per bucket).
const SERIES_MAX_ARMS: usize = 32;

/// The results of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Analytics {
    pub experiment_id: Uuid,
    pub status: Status,
    #[serde(rename = "type")]
    pub exp_type: ExpType,
    pub allocation: Allocation,
    /// Visitors inside the traffic share, over every arm.
    pub visitors: u64,
    /// Primary-goal conversions over every arm.
    pub conversions: u64,
    /// Visitors outside the traffic share.
    pub excluded: u64,
    pub weights_version: u32,
    pub arms: Vec<ArmResult>,
    pub srm: Srm,
    /// Follows `sequential` when `engine.decision_rule` is `sequential` (the default), the
    /// posterior thresholds when it is `bayesian`.
    pub recommendation: RecommendationOut,
    /// Intervals that hold at every look at once, and the decision drawn from them.
    pub sequential: SequentialOut,
    /// Main effects per element: empty for single-element experiments.
    pub elements: Vec<ElementEffects>,
    /// Multi-element experiments only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction: Option<Interaction>,
}

/// One arm (a variant, or a combination of variants) and its statistics.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ArmResult {
    pub arm_id: String,
    pub name: String,
    /// The variant of each element this arm shows.
    pub variant_ids: Vec<Uuid>,
    pub is_control: bool,
    pub allocations: u64,
    pub conversions: u64,
    pub conversion_rate: f64,
    /// Inverse-propensity estimate of the rate, unbiased under adaptive allocation.
    pub adjusted_conversion_rate: f64,
    pub value_sum: f64,
    pub posterior: Posterior,
    /// 95% equal-tailed credible interval of the rate: `[low, high]`.
    #[schema(value_type = Vec<f64>)]
    pub credible_interval: [f64; 2],
    pub prob_best: f64,
    pub expected_loss: f64,
    /// Null for the control.
    pub prob_beat_control: Option<f64>,
    /// Null for the control, or while the control has no conversions.
    pub lift_vs_control: Option<f64>,
    pub traffic_weight: f64,
    /// The allocations the weights each visitor saw lead one to expect (for SRM).
    pub expected_allocations: f64,
}

/// A Beta posterior's shapes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Posterior {
    pub alpha: f64,
    pub beta: f64,
}

/// Sample ratio mismatch: a chi-square test of the allocations against the expected ones.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Srm {
    /// Present only when the test was computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2: Option<f64>,
    pub p_value: Option<f64>,
    pub mismatch: bool,
    /// Present only when there are not enough visitors for the test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The recommendation, with the winning arm's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecommendationOut {
    pub decision: Decision,
    pub winner_arm_id: Option<String>,
    pub reason: String,
}

/// Anytime-valid results: each arm's confidence sequence at `alpha / arms` (so all hold
/// together with probability at least 1 - alpha, at every look and under adaptive
/// allocation), each arm's difference from the control, and the decision they support.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SequentialOut {
    /// The error rate over all arms together (`engine.sequential_alpha`).
    pub alpha: f64,
    pub arms: Vec<SequentialArm>,
    /// One per arm other than the control.
    pub effects: Vec<SequentialEffect>,
    pub decision: Decision,
    pub winner_arm_id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SequentialArm {
    pub arm_id: String,
    /// `[low, high]` of the conversion rate.
    #[schema(value_type = Vec<f64>)]
    pub confidence_sequence: [f64; 2],
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SequentialEffect {
    pub arm_id: String,
    pub vs_control: Effect,
}

/// A difference of conversion rates (arm minus control).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Effect {
    /// The difference of the observed rates.
    pub estimate: f64,
    /// `[low, high]`, anytime-valid.
    #[schema(value_type = Vec<f64>)]
    pub interval: [f64; 2],
}

/// Whether the elements of a multi-element experiment interact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Interaction {
    /// The best combination is not the combination of the per-element best variants.
    pub detected: bool,
    pub best_combination_arm_id: String,
}

/// Allocations and conversions per time bucket, with cumulative counts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Timeseries {
    pub experiment_id: Uuid,
    /// `hour` or `day`.
    pub bucket: String,
    pub buckets: Vec<TimeBucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimeBucket {
    /// The bucket's start, RFC 3339.
    pub start: String,
    pub arms: Vec<BucketArm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BucketArm {
    pub arm_id: String,
    pub allocations: u64,
    pub conversions: u64,
    pub cumulative_allocations: u64,
    pub cumulative_conversions: u64,
    /// From the cumulative counts; null above 32 arms.
    pub prob_best: Option<f64>,
}

/// Results: read from the live counters, never a scan of the records.
#[derive(Clone)]
pub struct Analysis {
    store: Store,
    writer: Writer,
    catalog: Arc<Catalog>,
    config: Arc<Config>,
}

impl Analysis {
    pub fn new(store: Store, writer: Writer, catalog: Arc<Catalog>, config: Arc<Config>) -> Self {
        Analysis { store, writer, catalog, config }
    }

    fn owned(&self, who: &Principal, id: Uuid) -> AppResult<Arc<super::catalog::Entry>> {
        self.catalog.owned(who, id)
    }

    /// The results of an experiment from its live counters; None before its first visitor.
    pub fn live(&self, exp: &Experiment) -> Option<Analytics> {
        let snap = self.writer.live().get(exp.id)?;
        (snap.state.visitors() > 0).then(|| self.analyse(exp, &snap.state))
    }

    pub fn analytics(&self, who: &Principal, id: Uuid) -> AppResult<Analytics> {
        let entry = self.owned(who, id)?;
        let exp = &entry.exp;
        let k = exp.arm_count();
        let snap = self.writer.live().get(id);
        let state = snap.as_ref().map(|s| s.state.clone()).unwrap_or_else(|| {
            let w = if exp.allocation == Allocation::Fixed {
                entry.fixed.w.clone()
            } else {
                vec![1.0 / k as f64; k]
            };
            BanditState::new(k, w)
        });
        Ok(self.analyse(exp, &state))
    }

    pub fn analyse(&self, exp: &Experiment, state: &BanditState) -> Analytics {
        let arms = exp.arms();
        if state.arms.len() != arms.len() {
            // Only a draft edited after a failed start can get here; show it as empty.
            let fresh = BanditState::new(arms.len(), vec![1.0 / arms.len() as f64; arms.len()]);
            return self.analyse(exp, &fresh);
        }
        let k = arms.len();
        let posts: Vec<BetaPosterior> = state.arms.iter().map(counting::posterior_of).collect();
        let summary = stats::summarize(&posts);
        let control = exp.control_arm();
        let allocations: Vec<u64> = state.arms.iter().map(|a| a.allocations).collect();
        let included: u64 = allocations.iter().sum();
        let control_rate = rate(allocations[control], state.arms[control].conversions);
        let mut out_arms = Vec::with_capacity(k);
        for (i, arm) in arms.iter().enumerate() {
            let a = &state.arms[i];
            let r = rate(a.allocations, a.conversions);
            let (lo, hi) = posts[i].credible_interval(0.95);
            let beat =
                if i == control { None } else { Some(stats::prob_beats(posts[i], posts[control])) };
            let lift = if i == control || control_rate == 0.0 {
                None
            } else {
                Some(r / control_rate - 1.0)
            };
            let adjusted = if included == 0 { 0.0 } else { a.ipw_conversions / included as f64 };
            let variant_ids: Vec<Uuid> = arm
                .variant_indices
                .iter()
                .zip(&exp.elements)
                .map(|(&v, e)| e.variants[v].id)
                .collect();
            out_arms.push(ArmResult {
                arm_id: arm.id.clone(),
                name: arm.name.clone(),
                variant_ids,
                is_control: i == control,
                allocations: a.allocations,
                conversions: a.conversions,
                conversion_rate: r,
                adjusted_conversion_rate: adjusted,
                value_sum: a.value_sum,
                posterior: Posterior { alpha: posts[i].alpha, beta: posts[i].beta },
                credible_interval: [lo, hi],
                prob_best: summary[i].prob_best,
                expected_loss: summary[i].expected_loss,
                prob_beat_control: beat,
                lift_vs_control: lift,
                traffic_weight: state.weights.get(i).copied().unwrap_or(0.0),
                expected_allocations: a.expected,
            });
        }

        let srm = if k >= 2 && allocations.iter().all(|&n| n >= 8) {
            let expected: Vec<f64> = state.arms.iter().map(|a| a.expected).collect();
            match stats::srm(&allocations, &expected) {
                Some(s) => Srm {
                    chi2: Some(s.chi2),
                    p_value: Some(s.p_value),
                    mismatch: s.p_value < 0.001,
                    reason: None,
                },
                None => Srm { chi2: None, p_value: None, mismatch: false, reason: None },
            }
        } else {
            Srm {
                chi2: None,
                p_value: None,
                mismatch: false,
                reason: Some("every arm needs at least 8 visitors".into()),
            }
        };

        let names: Vec<String> = arms.iter().map(|a| a.name.clone()).collect();
        let t = Thresholds {
            prob_best: self.config.engine.prob_best_threshold,
            loss: self.config.engine.loss_threshold,
            min_sample: self.config.engine.min_sample,
        };
        let bayes = decision::recommend(&names, &allocations, &summary, &t);
        let counts: Vec<(u64, u64)> =
            state.arms.iter().map(|a| (a.allocations, a.conversions)).collect();
        let engine = &self.config.engine;
        let seq = sequential::recommend(
            &names,
            &counts,
            engine.sequential_alpha,
            engine.loss_threshold,
            engine.min_sample,
        );
        let sequential = sequential_out(&arms, control, &counts, &seq);
        let rec = match engine.decision_rule {
            DecisionRule::Sequential => seq.recommendation,
            DecisionRule::Bayesian => bayes,
        };

        let (elements, interaction) = if exp.elements.len() > 1 {
            let m = decision::element_effects(exp, state, &summary);
            let interaction = Interaction {
                detected: m.interaction,
                best_combination_arm_id: arms[m.best_combination].id.clone(),
            };
            (m.elements, Some(interaction))
        } else {
            (Vec::new(), None)
        };
        Analytics {
            experiment_id: exp.id,
            status: exp.status,
            exp_type: exp.exp_type,
            allocation: exp.allocation,
            visitors: state.visitors(),
            conversions: state.conversions(),
            excluded: state.excluded,
            weights_version: state.weights_version,
            arms: out_arms,
            srm,
            recommendation: RecommendationOut {
                decision: rec.decision,
                winner_arm_id: rec.winner.map(|w| arms[w].id.clone()),
                reason: rec.reason,
            },
            sequential,
            elements,
            interaction,
        }
    }

    pub fn timeseries(&self, who: &Principal, id: Uuid, bucket: &str) -> AppResult<Timeseries> {
        let entry = self.owned(who, id)?;
        let hours_per = match bucket {
            "hour" => 1,
            "day" => 24,
            _ => return Err(AppError::validation("bucket", "must be hour or day")),
        };
        let k = entry.exp.arm_count();
        let rows = self.store.timeseries(id)?;
        let mut buckets: BTreeMap<i64, Vec<(u64, u64)>> = BTreeMap::new();
        for (hour, arm, a, c) in rows {
            let b = hour.div_euclid(hours_per) * hours_per;
            let v = buckets.entry(b).or_insert_with(|| vec![(0, 0); k]);
            if let Some(slot) = v.get_mut(arm as usize) {
                slot.0 += a;
                slot.1 += c;
            }
        }
        let arms = entry.exp.arms();
        let mut cum = vec![(0u64, 0u64); k];
        let mut out = Vec::with_capacity(buckets.len());
        for (start, counts) in buckets {
            for (c, n) in cum.iter_mut().zip(&counts) {
                c.0 += n.0;
                c.1 += n.1;
            }
            let pb = (k <= SERIES_MAX_ARMS).then(|| {
                let posts: Vec<_> =
                    cum.iter().map(|&(a, c)| BetaPosterior::from_counts(a, c)).collect();
                stats::prob_best(&posts)
            });
            let arm_rows = counts
                .iter()
                .enumerate()
                .map(|(i, &(a, c))| BucketArm {
                    arm_id: arms[i].id.clone(),
                    allocations: a,
                    conversions: c,
                    cumulative_allocations: cum[i].0,
                    cumulative_conversions: cum[i].1,
                    prob_best: pb.as_ref().map(|p| p[i]),
                })
                .collect();
            out.push(TimeBucket { start: rfc3339(start * 3_600_000), arms: arm_rows });
        }
        Ok(Timeseries { experiment_id: id, bucket: bucket.to_string(), buckets: out })
    }
}

/// The `sequential` block from the engine's sequences.
fn sequential_out(
    arms: &[Arm],
    control: usize,
    counts: &[(u64, u64)],
    seq: &Sequential,
) -> SequentialOut {
    let cs = &seq.intervals;
    let effects = (0..arms.len())
        .filter(|&i| i != control)
        .map(|i| {
            // The difference of two sequences each at alpha / K: it holds whenever both do,
            // so at every look and under adaptive allocation. Conservative (wider than an
            // interval built for the difference itself), but needs no propensity model.
            let (lo, hi) = sequential::difference_interval(cs[i], cs[control]);
            let estimate =
                rate(counts[i].0, counts[i].1) - rate(counts[control].0, counts[control].1);
            SequentialEffect {
                arm_id: arms[i].id.clone(),
                vs_control: Effect { estimate, interval: [lo, hi] },
            }
        })
        .collect();
    SequentialOut {
        alpha: seq.alpha,
        arms: arms
            .iter()
            .zip(cs)
            .map(|(a, &(lo, hi))| SequentialArm {
                arm_id: a.id.clone(),
                confidence_sequence: [lo, hi],
            })
            .collect(),
        effects,
        decision: seq.recommendation.decision,
        winner_arm_id: seq.recommendation.winner.map(|w| arms[w].id.clone()),
        reason: seq.recommendation.reason.clone(),
    }
}
