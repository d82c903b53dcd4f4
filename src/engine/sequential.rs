//! Decisions that stay valid however often the results are looked at: anytime-valid
//! confidence sequences per arm, and a recommendation built only from them. Pure.
//!
//! # Why these intervals hold at every look
//! With the engine's prior π = Beta(a0, b0) (uniform, a0 = b0 = 1, as in
//! `BetaPosterior::from_counts`) and c conversions out of n visitors of one arm, the mixture
//! likelihood ratio against a fixed rate p,
//!
//!   M_n(p) = ∫ q^c (1-q)^(n-c) dπ(q) / (p^c (1-p)^(n-c))
//!          = B(a0 + c, b0 + n - c) / B(a0, b0) / (p^c (1-p)^(n-c)),
//!
//! is a nonnegative martingale with M_0 = 1 when p is the arm's true rate. Ville's
//! inequality then bounds the chance it *ever* reaches 1/α by α, so
//! CS_n = {p : M_n(p) < 1/α} covers the true rate at every n at once: stopping at any look,
//! chosen after seeing the data, keeps the guarantee. This holds under adaptive allocation
//! too, because whether a visitor is sent to the arm depends only on the past, and given
//! that, the visitor converts with probability p (the martingale is over the arm's own
//! observations, in the experiment's filtration).
//!
//! ln M_n(p) is convex in p with its minimum (≤ 0) at the MLE c/n, so CS_n is an interval
//! around c/n and each endpoint is found by bisection on its side.
//!
//! With K arms each sequence is taken at α/K (Bonferroni), so all K hold together with
//! probability at least 1 - α, and any decision made from them (a winner, no difference)
//! is wrong with probability at most α, whenever it is made.

use super::decision::{Decision, Recommendation};
use super::special::ln_beta;

/// The engine's prior, Beta(1, 1): the one `BetaPosterior::from_counts` uses.
const PRIOR_A: f64 = 1.0;
const PRIOR_B: f64 = 1.0;

/// Bisection halvings per endpoint: enough to pin a number in [0, 1] to the f64 spacing.
const BISECTIONS: u32 = 80;

/// ln M_n(p) for c conversions out of n visitors, with 0·ln 0 = 0 at p = 0 or 1.
fn ln_mixture(p: f64, n: f64, c: f64, ln_b_post: f64) -> f64 {
    let f = n - c;
    let term = |k: f64, x: f64| if k == 0.0 { 0.0 } else { k * x.ln() };
    ln_b_post - ln_beta(PRIOR_A, PRIOR_B) - term(c, p) - term(f, 1.0 - p)
}

/// The anytime-valid confidence sequence `[lo, hi]` of one arm's conversion rate at level
/// `alpha` (the arm's share of the experiment's α), after `conversions` of `allocations`.
/// Conversions beyond allocations count as allocations, as everywhere in the engine; an
/// `alpha` outside (0, 1) gives the whole range.
pub fn confidence_sequence(allocations: u64, conversions: u64, alpha: f64) -> (f64, f64) {
    let c = conversions.min(allocations) as f64;
    let n = allocations as f64;
    if allocations == 0 || !(alpha > 0.0 && alpha < 1.0) {
        return (0.0, 1.0);
    }
    let ln_b_post = ln_beta(PRIOR_A + c, PRIOR_B + n - c);
    let limit = (1.0 / alpha).ln();
    let inside = |p: f64| ln_mixture(p, n, c, ln_b_post) < limit;
    let mle = c / n;
    // Walk from `from` (inside) towards `to` (outside) keeping that invariant.
    let bisect = |from: f64, to: f64| {
        if inside(to) {
            return to;
        }
        let (mut a, mut b) = (from, to);
        for _ in 0..BISECTIONS {
            let m = 0.5 * (a + b);
            if inside(m) {
                a = m;
            } else {
                b = m;
            }
        }
        0.5 * (a + b)
    };
    (bisect(mle, 0.0), bisect(mle, 1.0))
}

/// The sequential results of an experiment: each arm's confidence sequence at `alpha / K`
/// and the recommendation drawn from them.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequential {
    /// The experiment's α (each arm's sequence is taken at α / K).
    pub alpha: f64,
    pub intervals: Vec<(f64, f64)>,
    pub recommendation: Recommendation,
}

/// An anytime-valid interval of `arm - control` from the two arms' sequences: it holds
/// whenever both sequences do. Conservative (the difference's true width is closer to the
/// root of the sum of squares of the widths than to their sum), but valid at every look and
/// under adaptive allocation without a model of the propensities.
pub fn difference_interval(arm: (f64, f64), control: (f64, f64)) -> (f64, f64) {
    (arm.0 - control.1, arm.1 - control.0)
}

/// The recommendation from confidence sequences alone. `counts` are (allocations,
/// conversions) per arm, `alpha` the experiment's error rate, `loss` the difference in rate
/// below which arms count as equal (`engine.loss_threshold`, as for the Bayesian rule) and
/// `min_sample` the visitors every arm needs before any decision, as for the Bayesian rule:
/// not needed for validity, kept so both rules wait for the same first data.
///
/// A winner: one arm's lower bound is above every other arm's upper bound. No difference:
/// every difference interval between two arms lies within ±`loss`.
pub fn recommend(
    names: &[String],
    counts: &[(u64, u64)],
    alpha: f64,
    loss: f64,
    min_sample: u64,
) -> Sequential {
    let k = counts.len();
    let per_arm = alpha / k.max(1) as f64;
    let intervals: Vec<(f64, f64)> =
        counts.iter().map(|&(n, c)| confidence_sequence(n, c, per_arm)).collect();
    let keep =
        |reason: String| Recommendation { decision: Decision::KeepRunning, winner: None, reason };
    let out = |recommendation| Sequential { alpha, intervals: intervals.clone(), recommendation };
    if k == 0 {
        return out(keep("no arms".into()));
    }
    let min_n = counts.iter().map(|c| c.0).min().unwrap_or(0);
    if min_n < min_sample {
        return out(keep(format!(
            "every arm needs at least {min_sample} visitors before a decision (the smallest has {min_n})"
        )));
    }
    // The leader by lower bound is the only arm that can clear every other upper bound.
    let (best, lo_best) = intervals
        .iter()
        .enumerate()
        .map(|(i, iv)| (i, iv.0))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    let hi_others = intervals
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, iv)| iv.1)
        .fold(f64::MIN, f64::max);
    if k > 1 && lo_best > hi_others {
        let reason = format!(
            "{} is the winner: its rate is at least {:.3}% and every other arm's at most {:.3}%, with intervals that hold at every look ({:.0}% confidence)",
            names[best],
            lo_best * 100.0,
            hi_others * 100.0,
            (1.0 - alpha) * 100.0
        );
        return out(Recommendation {
            decision: Decision::DeclareWinner,
            winner: Some(best),
            reason,
        });
    }
    let equal = (0..k).all(|i| {
        (0..k).filter(|&j| j != i).all(|j| {
            let (lo, hi) = difference_interval(intervals[i], intervals[j]);
            lo >= -loss && hi <= loss
        })
    });
    if equal {
        let reason = format!(
            "no meaningful difference: every difference between two arms is within {:.3} percentage points, with intervals that hold at every look",
            loss * 100.0
        );
        return out(Recommendation { decision: Decision::StopNoDifference, winner: None, reason });
    }
    out(keep(format!(
        "the leader {} is not yet clear of every other arm: its rate is at least {:.3}% and the best of the rest's at most {:.3}%",
        names[best],
        lo_best * 100.0,
        hi_others * 100.0
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::allocator;
    use crate::engine::decision::{self, Thresholds};
    use crate::engine::hashing;
    use crate::engine::stats::{self, BetaPosterior};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// Endpoints of {p : M_n(p) < 1/α} from mpmath 1.3.0 at mp.dps = 40, by 200 bisection
    /// steps of ln B(1+c, 1+n-c) - c ln p - (n-c) ln(1-p) - ln(1/α) on each side of c/n:
    ///   from mpmath import mp, mpf, log, beta; mp.dps = 40
    ///   f = lambda p: log(beta(1+c, 1+n-c)) - c*log(p) - (n-c)*log(1-p) - log(1/mpf(alpha))
    /// (n, c, α, lo, hi), each endpoint rounded to the nearest f64 (`repr(float(x))`).
    const REFERENCE: &[(u64, u64, f64, f64, f64)] = &[
        (100, 5, 0.025, 0.0056221399536971264, 0.16858215015271427),
        (1000, 50, 0.025, 0.027390537289353475, 0.08183531345190051),
        (20000, 1000, 0.05, 0.04388168839488621, 0.05663121787737819),
        (1000000, 50000, 0.0125, 0.0489441333329323, 0.051070139727464305),
        (50, 0, 0.05, 0.0, 0.12938128909150773),
        (200, 200, 0.05, 0.9593539537484869, 1.0),
    ];

    #[test]
    fn sequential_endpoints_match_mpmath() {
        for &(n, c, alpha, lo, hi) in REFERENCE {
            let (l, h) = confidence_sequence(n, c, alpha);
            // Relative 1e-9: ln B at a million visitors is ~2e5 in size, so its f64 rounding
            // alone moves the endpoints by ~1e-14.
            assert!((l - lo).abs() <= 1e-9 * lo.max(1e-3), "lo {n} {c}: {l} vs {lo}");
            assert!((h - hi).abs() <= 1e-9 * hi, "hi {n} {c}: {h} vs {hi}");
        }
    }

    #[test]
    fn sequential_intervals_are_wider_than_credible_ones_and_shrink() {
        assert_eq!(confidence_sequence(0, 0, 0.05), (0.0, 1.0));
        assert_eq!(confidence_sequence(10, 3, f64::NAN), (0.0, 1.0));
        // More conversions than visitors count as visitors.
        assert_eq!(confidence_sequence(10, 30, 0.05), confidence_sequence(10, 10, 0.05));
        let (lo, hi) = confidence_sequence(2000, 100, 0.05);
        let (clo, chi) = BetaPosterior::from_counts(2000, 100).credible_interval(0.95);
        assert!(lo < clo && hi > chi, "[{lo}, {hi}] vs credible [{clo}, {chi}]");
        let (lo2, hi2) = confidence_sequence(20000, 1000, 0.05);
        assert!(hi2 - lo2 < hi - lo);
        assert_eq!(difference_interval((0.1, 0.2), (0.05, 0.08)), (0.1 - 0.08, 0.2 - 0.05));
    }

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("arm {i}")).collect()
    }

    #[test]
    fn sequential_recommendations() {
        let r = recommend(&names(2), &[(50, 5), (5000, 2500)], 0.05, 0.001, 100);
        assert_eq!(r.recommendation.decision, Decision::KeepRunning);
        assert!(r.recommendation.reason.contains("has 50"), "{}", r.recommendation.reason);
        let r = recommend(&names(2), &[(20_000, 1_000), (20_000, 1_600)], 0.05, 0.001, 100);
        assert_eq!(r.recommendation.decision, Decision::DeclareWinner);
        assert_eq!(r.recommendation.winner, Some(1));
        assert!(r.recommendation.reason.starts_with("arm 1 is the winner"));
        // About 97% probability of being best: the Bayesian rule declares, this one waits.
        let r = recommend(&names(2), &[(20_000, 1_000), (20_000, 1_080)], 0.05, 0.001, 100);
        assert_eq!(r.recommendation.decision, Decision::KeepRunning);
        assert!(r.recommendation.reason.starts_with("the leader arm 1"));
        // Equal arms with intervals narrower than ±1 point: no difference.
        let big = (1_000_000, 50_000);
        let r = recommend(&names(2), &[big, big], 0.05, 0.01, 100);
        assert_eq!(r.recommendation.decision, Decision::StopNoDifference);
        let r = recommend(&names(2), &[big, big], 0.05, 0.001, 100);
        assert_eq!(r.recommendation.decision, Decision::KeepRunning, "not within ±0.1 point");
        assert_eq!(recommend(&[], &[], 0.05, 0.001, 100).recommendation.reason, "no arms");
    }

    /// What one seeded A/A run declares: (sequential, P(best) ≥ 0.95 crossing, the product's
    /// Bayesian recommendation), each true when it declared a winner at some look.
    fn aa_run(seed: u64, thompson: bool) -> (bool, bool, bool) {
        const RATE: f64 = 0.05;
        const VISITORS: u64 = 20_000;
        const EVERY: u64 = 100;
        let t = Thresholds { prob_best: 0.95, loss: 0.001, min_sample: 100 };
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = [(0u64, 0u64); 2];
        let mut weights = vec![0.5, 0.5];
        let (mut seq, mut crossed, mut bayes) = (false, false, false);
        for v in 1..=VISITORS {
            let u = f64::from(rng.random_range(0..10_000u32)) / 10_000.0;
            let arm = hashing::choose(u, &weights, 1.0).unwrap_or(1);
            counts[arm].0 += 1;
            if rng.random::<f64>() < RATE {
                counts[arm].1 += 1;
            }
            if v % EVERY != 0 {
                continue;
            }
            if !seq {
                let s = recommend(&names(2), &counts, 0.05, t.loss, t.min_sample);
                seq = s.recommendation.decision == Decision::DeclareWinner;
            }
            let posts: Vec<BetaPosterior> =
                counts.iter().map(|&(n, c)| BetaPosterior::from_counts(n, c)).collect();
            let summary = stats::summarize(&posts);
            let min_n = counts.iter().map(|c| c.0).min().unwrap_or(0);
            if min_n >= t.min_sample && summary.iter().any(|s| s.prob_best >= t.prob_best) {
                crossed = true;
            }
            if !bayes {
                let alloc = [counts[0].0, counts[1].0];
                let r = decision::recommend(&names(2), &alloc, &summary, &t);
                bayes = r.decision == Decision::DeclareWinner;
            }
            if thompson {
                // The allocator's own weights, refreshed at every look (floor 0.01).
                let ac: Vec<allocator::ArmCounts> = counts
                    .iter()
                    .map(|&(n, c)| allocator::ArmCounts { allocations: n, conversions: c })
                    .collect();
                weights = allocator::adaptive_weights(&ac, 0.01, 0);
            }
        }
        (seq, crossed, bayes)
    }

    /// 500 seeded A/A runs (both arms 5%, 20,000 visitors, a look every 100): the sequential
    /// rule declares a winner in at most 5% of them, with a fixed split and under Thompson
    /// allocation, while stopping at the first P(best) ≥ 0.95 does far more often.
    #[test]
    fn sequential_aa_peeking_keeps_the_error_rate() {
        const RUNS: u64 = 500;
        for thompson in [false, true] {
            let (mut seq, mut crossed, mut bayes) = (0, 0, 0);
            for r in 0..RUNS {
                let (s, c, b) = aa_run(10_000 + r, thompson);
                seq += s as u64;
                crossed += c as u64;
                bayes += b as u64;
            }
            let share = |x: u64| x as f64 / RUNS as f64;
            let split = if thompson { "thompson" } else { "fixed 50/50" };
            println!(
                "A/A {split}: sequential declared {:.1}%, P(best) >= 0.95 crossed {:.1}%, Bayesian recommendation declared {:.1}%",
                share(seq) * 100.0,
                share(crossed) * 100.0,
                share(bayes) * 100.0
            );
            assert!(share(seq) <= 0.05, "{split}: sequential {}", share(seq));
            assert!(crossed > seq, "{split}: P(best) crossing {crossed} vs sequential {seq}");
        }
    }
}
