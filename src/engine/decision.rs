//! What to do with an experiment, from its posteriors: the recommendation (keep running,
//! declare a winner, or stop because the arms do not differ) and, for multi-element
//! experiments, each element's main effects and whether the elements interact. Pure.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::counting::{self, BanditState};
use super::model::Experiment;
use super::stats::{self, BetaPosterior};

/// The recommendation in the three words API.md names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    KeepRunning,
    DeclareWinner,
    StopNoDifference,
}

/// Which rule `recommendation` (and the winner-found webhook and email) follows
/// (`engine.decision_rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionRule {
    /// Anytime-valid confidence sequences (`sequential::recommend`): a declaration stays
    /// trustworthy however often the results are looked at.
    #[default]
    Sequential,
    /// The posterior thresholds (`recommend`): faster, but checking them at every look and
    /// stopping at the first crossing declares equal arms different far more often than
    /// 1 - `prob_best` suggests.
    Bayesian,
}

/// When a winner may be declared, or the arms called equal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Probability of being best the leader needs (`engine.prob_best_threshold`).
    pub prob_best: f64,
    /// Expected loss under which an arm may be chosen (`engine.loss_threshold`).
    pub loss: f64,
    /// Visitors every arm needs before any decision (`engine.min_sample`).
    pub min_sample: u64,
}

/// The decision, the winning arm's index when there is one, and a reason a person can read.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub decision: Decision,
    pub winner: Option<usize>,
    pub reason: String,
}

impl Recommendation {
    fn keep_running(reason: String) -> Recommendation {
        Recommendation { decision: Decision::KeepRunning, winner: None, reason }
    }
}

pub fn recommend(
    names: &[String],
    allocations: &[u64],
    summary: &[stats::ArmSummary],
    t: &Thresholds,
) -> Recommendation {
    let min_n = allocations.iter().copied().min().unwrap_or(0);
    let Some((best, s)) =
        summary.iter().enumerate().max_by(|a, b| a.1.prob_best.total_cmp(&b.1.prob_best))
    else {
        return Recommendation::keep_running("no arms".into());
    };
    if min_n < t.min_sample {
        let reason = format!(
            "every arm needs at least {} visitors before a decision (the smallest has {min_n})",
            t.min_sample
        );
        return Recommendation::keep_running(reason);
    }
    if s.prob_best >= t.prob_best && s.expected_loss < t.loss {
        let reason = format!(
            "{} is the winner with {:.1}% probability of being best, and choosing it costs at most {:.3} percentage points of conversion rate in expectation",
            names[best],
            s.prob_best * 100.0,
            s.expected_loss * 100.0
        );
        return Recommendation { decision: Decision::DeclareWinner, winner: Some(best), reason };
    }
    if summary.iter().all(|a| a.expected_loss < t.loss) {
        let reason = format!(
            "no meaningful difference: whichever arm you keep, the expected loss is below {:.3} percentage points",
            t.loss * 100.0
        );
        return Recommendation { decision: Decision::StopNoDifference, winner: None, reason };
    }
    let reason = format!(
        "the leader {} has {:.1}% probability of being best; a winner needs {:.0}% and an expected loss below {:.3} points",
        names[best],
        s.prob_best * 100.0,
        t.prob_best * 100.0,
        t.loss * 100.0
    );
    Recommendation::keep_running(reason)
}

/// One variant's main effect.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VariantEffect {
    pub variant_id: Uuid,
    pub name: String,
    /// Visitors of every combination containing this variant.
    pub allocations: u64,
    pub conversions: u64,
    /// The unweighted mean of the rates of the combinations containing this variant.
    pub marginal_rate: f64,
    /// Conversions over visitors of those combinations.
    pub pooled_rate: f64,
    /// Probability of being best among this element's variants.
    pub prob_best: f64,
}

/// One element's variants with their main effects.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ElementEffects {
    pub element_id: Uuid,
    pub name: String,
    pub variants: Vec<VariantEffect>,
}

/// The main effects of every element, and the combination they are compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct MainEffects {
    pub elements: Vec<ElementEffects>,
    /// The best combination is not the combination of the per-element best variants.
    pub interaction: bool,
    /// The arm most probably best.
    pub best_combination: usize,
}

pub fn rate(allocations: u64, conversions: u64) -> f64 {
    if allocations == 0 { 0.0 } else { conversions as f64 / allocations as f64 }
}

/// Main effects: each element's variants with their marginal rate (over every combination
/// that contains them) and probability of being best among that element's variants, plus
/// an interaction flag when the best combination is not the combination of the per-element
/// best variants. `state` has one arm per combination of `exp`.
pub fn element_effects(
    exp: &Experiment,
    state: &BanditState,
    summary: &[stats::ArmSummary],
) -> MainEffects {
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
            cells[v].push(counting::posterior_of(a));
        }
        // The mean of independent Betas, as a Beta with the same mean and variance.
        let posts: Vec<BetaPosterior> = cells.iter().map(|c| moment_matched_mean(c)).collect();
        let pb = stats::prob_best(&posts);
        let best =
            pb.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
        per_element_best.push(best);
        let variants = el
            .variants
            .iter()
            .enumerate()
            .map(|(vi, v)| VariantEffect {
                variant_id: v.id,
                name: v.name.clone(),
                allocations: counts[vi].0,
                conversions: counts[vi].1,
                marginal_rate: posts[vi].mean(),
                pooled_rate: rate(counts[vi].0, counts[vi].1),
                prob_best: pb[vi],
            })
            .collect();
        elements.push(ElementEffects { element_id: el.id, name: el.name.clone(), variants });
    }
    let best_combination = summary
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.prob_best.total_cmp(&b.1.prob_best))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let interaction = arms[best_combination].variant_indices != per_element_best;
    MainEffects { elements, interaction, best_combination }
}

/// The mean of independent Betas, as a Beta with the same mean and variance.
pub fn moment_matched_mean(cells: &[BetaPosterior]) -> BetaPosterior {
    let n = cells.len().max(1) as f64;
    let mean = cells.iter().map(|c| c.mean()).sum::<f64>() / n;
    let var = cells.iter().map(|c| c.sd().powi(2)).sum::<f64>() / (n * n);
    // Beta(a, b) with mean m and variance v: a + b = m(1 - m)/v - 1.
    let total = (mean * (1.0 - mean) / var.max(1e-300) - 1.0).max(1e-9);
    BetaPosterior { alpha: (mean * total).max(1e-9), beta: ((1.0 - mean) * total).max(1e-9) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds { prob_best: 0.95, loss: 0.001, min_sample: 100 };

    fn decide(counts: &[(u64, u64)], t: &Thresholds) -> Recommendation {
        let posts: Vec<BetaPosterior> =
            counts.iter().map(|&(a, c)| BetaPosterior::from_counts(a, c)).collect();
        let names: Vec<String> = (0..counts.len()).map(|i| format!("arm {i}")).collect();
        let allocations: Vec<u64> = counts.iter().map(|c| c.0).collect();
        recommend(&names, &allocations, &stats::summarize(&posts), t)
    }

    #[test]
    fn too_few_visitors_keep_it_running() {
        let r = decide(&[(99, 10), (5_000, 2_500)], &T);
        assert_eq!(r.decision, Decision::KeepRunning);
        assert_eq!(r.winner, None);
        assert!(r.reason.contains("at least 100 visitors") && r.reason.contains("has 99"));
        assert_eq!(decide(&[], &T).reason, "no arms");
    }

    #[test]
    fn a_clear_leader_is_declared_the_winner() {
        let r = decide(&[(20_000, 1_000), (20_000, 1_600)], &T);
        assert_eq!(r.decision, Decision::DeclareWinner);
        assert_eq!(r.winner, Some(1));
        assert!(r.reason.starts_with("arm 1 is the winner"), "{}", r.reason);
        // About 97% probability of being best: a winner at 0.95, not at 0.99.
        let close = [(20_000, 1_000), (20_000, 1_080)];
        assert_eq!(decide(&close, &T).decision, Decision::DeclareWinner);
        let r = decide(&close, &Thresholds { prob_best: 0.99, ..T });
        assert_eq!(r.decision, Decision::KeepRunning);
        assert!(r.reason.contains("a winner needs 99%"), "{}", r.reason);
    }

    #[test]
    fn equal_arms_stop_with_no_difference() {
        let r = decide(&[(200_000, 10_000), (200_000, 10_000)], &T);
        assert_eq!(r.decision, Decision::StopNoDifference);
        assert_eq!(r.winner, None);
        assert!(r.reason.starts_with("no meaningful difference"));
    }

    #[test]
    fn an_unclear_leader_keeps_it_running() {
        let r = decide(&[(1_000, 50), (1_000, 60)], &T);
        assert_eq!(r.decision, Decision::KeepRunning);
        assert!(r.reason.starts_with("the leader arm 1"), "{}", r.reason);
    }

    #[test]
    fn decisions_serialise_in_snake_case() {
        let words: Vec<String> =
            [Decision::KeepRunning, Decision::DeclareWinner, Decision::StopNoDifference]
                .iter()
                .map(|d| serde_json::to_string(d).unwrap())
                .collect();
        assert_eq!(words, ["\"keep_running\"", "\"declare_winner\"", "\"stop_no_difference\""]);
    }

    #[test]
    fn the_moment_matched_mean_keeps_mean_and_variance() {
        let cells = [BetaPosterior::from_counts(100, 10), BetaPosterior::from_counts(400, 80)];
        let m = moment_matched_mean(&cells);
        let mean = (cells[0].mean() + cells[1].mean()) / 2.0;
        let var = (cells[0].sd().powi(2) + cells[1].sd().powi(2)) / 4.0;
        assert!((m.mean() - mean).abs() < 1e-12);
        assert!((m.sd().powi(2) - var).abs() < 1e-12);
    }
}
