//! Results of an experiment from its live counters (never a scan of its records): posteriors,
//! exact probability of being best, expected loss, intervals, lift, SRM, an adjusted rate that
//! corrects for adaptive allocation, the recommendation, and per-element main effects.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::auth::Principal;
use super::{Services, rfc3339};
use crate::engine::model::Experiment;
use crate::engine::stats::{self, BetaPosterior};
use crate::error::{AppError, AppResult};
use crate::store::records::BanditState;

/// Above this many arms the exact quadrature is skipped in the timeseries (per bucket).
const SERIES_MAX_ARMS: usize = 32;

pub struct Thresholds {
    pub prob_best: f64,
    pub loss: f64,
    pub min_sample: u64,
}

/// The recommendation in the three words API.md names, with a reason a person can read.
pub fn recommend(
    names: &[String],
    allocations: &[u64],
    summary: &[stats::ArmSummary],
    t: &Thresholds,
) -> (String, Option<usize>, String) {
    let min_n = allocations.iter().copied().min().unwrap_or(0);
    let Some((best, s)) =
        summary.iter().enumerate().max_by(|a, b| a.1.prob_best.total_cmp(&b.1.prob_best))
    else {
        return ("keep_running".into(), None, "no arms".into());
    };
    if min_n < t.min_sample {
        let reason = format!(
            "every arm needs at least {} visitors before a decision (the smallest has {min_n})",
            t.min_sample
        );
        return ("keep_running".into(), None, reason);
    }
    if s.prob_best >= t.prob_best && s.expected_loss < t.loss {
        let reason = format!(
            "{} is the winner with {:.1}% probability of being best, and choosing it costs at most {:.3} percentage points of conversion rate in expectation",
            names[best],
            s.prob_best * 100.0,
            s.expected_loss * 100.0
        );
        return ("declare_winner".into(), Some(best), reason);
    }
    if summary.iter().all(|a| a.expected_loss < t.loss) {
        let reason = format!(
            "no meaningful difference: whichever arm you keep, the expected loss is below {:.3} percentage points",
            t.loss * 100.0
        );
        return ("stop_no_difference".into(), None, reason);
    }
    let reason = format!(
        "the leader {} has {:.1}% probability of being best; a winner needs {:.0}% and an expected loss below {:.3} points",
        names[best],
        s.prob_best * 100.0,
        t.prob_best * 100.0,
        t.loss * 100.0
    );
    ("keep_running".into(), None, reason)
}

fn rate(a: u64, c: u64) -> f64 {
    if a == 0 { 0.0 } else { c as f64 / a as f64 }
}

impl Services {
    pub fn analytics(&self, who: &Principal, id: Uuid) -> AppResult<Value> {
        let entry = self.owned(who, id)?;
        let exp = &entry.exp;
        let k = exp.arm_count();
        let snap = self.writer.live().get(id);
        let state = snap.as_ref().map(|s| s.state.clone()).unwrap_or_else(|| {
            let w = if exp.allocation == crate::engine::model::Allocation::Fixed {
                entry.fixed.w.clone()
            } else {
                vec![1.0 / k as f64; k]
            };
            BanditState::new(k, w)
        });
        Ok(self.analyse(exp, &state))
    }

    pub fn analyse(&self, exp: &Experiment, state: &BanditState) -> Value {
        let arms = exp.arms();
        if state.arms.len() != arms.len() {
            // Only a draft edited after a failed start can get here; show it as empty.
            let fresh = BanditState::new(arms.len(), vec![1.0 / arms.len() as f64; arms.len()]);
            return self.analyse(exp, &fresh);
        }
        let k = arms.len();
        let posts: Vec<BetaPosterior> = state
            .arms
            .iter()
            .map(|a| BetaPosterior::from_counts(a.allocations, a.conversions))
            .collect();
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
            out_arms.push(json!({
                "arm_id": arm.id, "name": arm.name, "variant_ids": variant_ids,
                "is_control": i == control,
                "allocations": a.allocations, "conversions": a.conversions,
                "conversion_rate": r,
                "adjusted_conversion_rate": adjusted,
                "value_sum": a.value_sum,
                "posterior": {"alpha": posts[i].alpha, "beta": posts[i].beta},
                "credible_interval": [lo, hi],
                "prob_best": summary[i].prob_best,
                "expected_loss": summary[i].expected_loss,
                "prob_beat_control": beat,
                "lift_vs_control": lift,
                "traffic_weight": state.weights.get(i).copied().unwrap_or(0.0),
                "expected_allocations": a.expected,
            }));
        }

        let srm = if k >= 2 && allocations.iter().all(|&n| n >= 8) {
            let expected: Vec<f64> = state.arms.iter().map(|a| a.expected).collect();
            match stats::srm(&allocations, &expected) {
                Some(s) => {
                    json!({"chi2": s.chi2, "p_value": s.p_value, "mismatch": s.p_value < 0.001})
                }
                None => json!({"p_value": null, "mismatch": false}),
            }
        } else {
            json!({"p_value": null, "mismatch": false, "reason": "every arm needs at least 8 visitors"})
        };

        let names: Vec<String> = arms.iter().map(|a| a.name.clone()).collect();
        let t = Thresholds {
            prob_best: 0.95,
            loss: self.config.engine.loss_threshold,
            min_sample: self.config.engine.min_sample,
        };
        let (decision, winner, reason) = recommend(&names, &allocations, &summary, &t);

        let mut out = json!({
            "experiment_id": exp.id, "status": exp.status, "type": exp.exp_type,
            "allocation": exp.allocation,
            "visitors": state.visitors(), "conversions": state.conversions(),
            "excluded": state.excluded,
            "weights_version": state.weights_version,
            "arms": out_arms,
            "srm": srm,
            "recommendation": {"decision": decision,
                "winner_arm_id": winner.map(|w| arms[w].id.clone()), "reason": reason},
        });
        if exp.elements.len() > 1 {
            let (elements, interaction, best) = element_effects(exp, state, &summary);
            out["elements"] = elements;
            out["interaction"] = json!({"detected": interaction, "best_combination_arm_id": best});
        } else {
            out["elements"] = json!([]);
        }
        out
    }

    pub fn timeseries(&self, who: &Principal, id: Uuid, bucket: &str) -> AppResult<Value> {
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
            let arm_rows: Vec<Value> = counts
                .iter()
                .enumerate()
                .map(|(i, &(a, c))| {
                    json!({"arm_id": arms[i].id, "allocations": a, "conversions": c,
                           "cumulative_allocations": cum[i].0, "cumulative_conversions": cum[i].1,
                           "prob_best": pb.as_ref().map(|p| p[i])})
                })
                .collect();
            out.push(json!({"start": rfc3339(start * 3_600_000), "arms": arm_rows}));
        }
        Ok(json!({"experiment_id": id, "bucket": bucket, "buckets": out}))
    }
}

/// Main effects: each element's variants with their marginal rate (over every combination
/// that contains them) and probability of being best among that element's variants, plus
/// an interaction flag when the best combination is not the combination of the per-element
/// best variants.
fn element_effects(
    exp: &Experiment,
    state: &BanditState,
    summary: &[stats::ArmSummary],
) -> (Value, bool, String) {
    let arms = exp.arms();
    let mut per_element_best = Vec::new();
    let mut elements = Vec::new();
    for (ei, el) in exp.elements.iter().enumerate() {
        // A main effect is the unweighted mean of the cells containing the variant. Pooling
        // visitors instead would let adaptive allocation (which piles traffic on the best
        // cell) make that cell's variants look good on every row, hiding interactions.
        let mut counts = vec![(0u64, 0u64); el.variants.len()];
        let mut cells: Vec<Vec<BetaPosterior>> = vec![Vec::new(); el.variants.len()];
        for arm in &arms {
            let a = &state.arms[arm.index];
            let v = arm.variant_indices[ei];
            counts[v].0 += a.allocations;
            counts[v].1 += a.conversions;
            cells[v].push(BetaPosterior::from_counts(a.allocations, a.conversions));
        }
        // The mean of independent Betas, as a Beta with the same mean and variance.
        let posts: Vec<BetaPosterior> = cells.iter().map(|c| moment_matched_mean(c)).collect();
        let pb = stats::prob_best(&posts);
        let best =
            pb.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
        per_element_best.push(best);
        let variants: Vec<Value> = el
            .variants
            .iter()
            .enumerate()
            .map(|(vi, v)| {
                json!({"variant_id": v.id, "name": v.name, "allocations": counts[vi].0,
                       "conversions": counts[vi].1, "marginal_rate": posts[vi].mean(),
                       "pooled_rate": rate(counts[vi].0, counts[vi].1),
                       "prob_best": pb[vi]})
            })
            .collect();
        elements.push(json!({"element_id": el.id, "name": el.name, "variants": variants}));
    }
    let best_combo = summary
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.prob_best.total_cmp(&b.1.prob_best))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let interaction = arms[best_combo].variant_indices != per_element_best;
    (Value::Array(elements), interaction, arms[best_combo].id.clone())
}

fn moment_matched_mean(cells: &[BetaPosterior]) -> BetaPosterior {
    let n = cells.len().max(1) as f64;
    let mean = cells.iter().map(|c| c.mean()).sum::<f64>() / n;
    let var = cells.iter().map(|c| c.sd().powi(2)).sum::<f64>() / (n * n);
    // Beta(a, b) with mean m and variance v: a + b = m(1 - m)/v - 1.
    let total = (mean * (1.0 - mean) / var.max(1e-300) - 1.0).max(1e-9);
    BetaPosterior { alpha: (mean * total).max(1e-9), beta: ((1.0 - mean) * total).max(1e-9) }
}
