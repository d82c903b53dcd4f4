//! Traffic weights: the fixed split, or Thompson sampling in its probability-matching form
//! (each arm's weight is its exact probability of being best, floored), or top-two Thompson
//! sampling in the same form. The same code serves live traffic and the simulator, so the
//! simulator's regret is the engine's.

use super::hashing;
use super::stats::{self, BetaPosterior};

/// Per-arm counts the allocator needs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArmCounts {
    pub allocations: u64,
    pub conversions: u64,
}

/// Weights with the version each assignment records, so its propensity is reproducible.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub version: u32,
    pub w: Vec<f64>,
}

impl Weights {
    pub fn equal(k: usize) -> Weights {
        Weights { version: 0, w: vec![1.0 / k.max(1) as f64; k] }
    }
}

/// Mixes `p` with the uniform share so every arm keeps at least `floor`
/// (`w = floor + (1 - k*floor) * p`); a floor too large for `k` arms gives equal weights.
pub fn floor_weights(p: &[f64], floor: f64) -> Vec<f64> {
    let k = p.len() as f64;
    if floor * k >= 1.0 {
        return vec![1.0 / k; p.len()];
    }
    p.iter().map(|&x| floor + (1.0 - k * floor) * x).collect()
}

/// The adaptive weights for the current counts: equal during burn-in, otherwise the floored
/// probability of being best under Beta(1 + c, 1 + n - c) posteriors.
pub fn adaptive_weights(counts: &[ArmCounts], floor: f64, burn_in: u64) -> Vec<f64> {
    policy_weights(Policy::Thompson, counts, floor, burn_in)
}

/// How an adaptive experiment turns posteriors into weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// Thompson sampling: earns the most while it runs.
    #[default]
    Thompson,
    /// Top-two Thompson sampling with β = ½: learns which arm is best sooner.
    TopTwo,
}

/// The weights `policy` gives for the current counts: equal during burn-in, otherwise
/// floored as in [`adaptive_weights`].
pub fn policy_weights(policy: Policy, counts: &[ArmCounts], floor: f64, burn_in: u64) -> Vec<f64> {
    if counts.iter().any(|c| c.allocations < burn_in) {
        return vec![1.0 / counts.len().max(1) as f64; counts.len()];
    }
    let posts: Vec<BetaPosterior> =
        counts.iter().map(|c| BetaPosterior::from_counts(c.allocations, c.conversions)).collect();
    weights_from_prob_best(policy, &stats::prob_best(&posts), counts, floor, burn_in)
}

/// [`policy_weights`] from the arms' probabilities of being best when the caller has them
/// already (the simulator computes them at every check anyway).
pub fn weights_from_prob_best(
    policy: Policy,
    prob_best: &[f64],
    counts: &[ArmCounts],
    floor: f64,
    burn_in: u64,
) -> Vec<f64> {
    if counts.iter().any(|c| c.allocations < burn_in) {
        return vec![1.0 / counts.len().max(1) as f64; counts.len()];
    }
    match policy {
        Policy::Thompson => floor_weights(prob_best, floor),
        Policy::TopTwo => floor_weights(&top_two_weights(prob_best, TOP_TWO_BETA), floor),
    }
}

/// Top-two Thompson sampling's share for the leader's sample (Russo 2016 recommends ½).
pub const TOP_TWO_BETA: f64 = 0.5;

/// Top-two Thompson sampling (Russo, "Simple Bayesian algorithms for best arm
/// identification", 2016) in its probability-matching form, from each arm's probability of
/// being best `p`. The algorithm draws a leader I (arm j with probability p_j); with
/// probability β it plays I, otherwise it redraws the posterior until another arm wins and
/// plays that challenger. The redraws are independent of the first draw, so the challenger
/// is i ≠ j with probability p_i / Σ_{l≠j} p_l, and the chance of playing i is
///
///   w_i = β p_i + (1 - β) Σ_{j≠i} p_j · p_i / Σ_{l≠j} p_l.
///
/// The weights sum to 1. Where the rest of a leader's mass is exactly zero (p_j = 1 to f64
/// precision), its challenger share is spread equally over the other arms: which of them
/// would win the redraw is then beyond what `p` tells.
///
/// Unlike plain Thompson sampling, the leader's weight tends to β, not 1, so the runner-up
/// keeps getting visitors and the leader's margin is measured sooner.
pub fn top_two_weights(p: &[f64], beta: f64) -> Vec<f64> {
    let k = p.len();
    if k < 2 {
        return vec![1.0; k];
    }
    let mut w: Vec<f64> = p.iter().map(|&x| beta * x).collect();
    for (j, &pj) in p.iter().enumerate() {
        // Summed directly rather than as 1 - p_j, which loses every digit when p_j ≈ 1.
        let rest: f64 = p.iter().enumerate().filter(|&(l, _)| l != j).map(|(_, x)| x).sum();
        for (i, wi) in w.iter_mut().enumerate() {
            if i == j {
                continue;
            }
            let share = if rest > 0.0 { p[i] / rest } else { 1.0 / (k - 1) as f64 };
            *wi += (1.0 - beta) * pj * share;
        }
    }
    w
}

/// The least absolute move of one arm's weight that publishes a new weights version
/// (half a percentage point), unless `engine.min_weight_change` says otherwise.
pub const MIN_WEIGHT_CHANGE: f64 = 0.005;

/// Whether `new` weights differ materially from `old`, i.e. are worth a new weights version
/// (and its weight-history row and audit entry): the number of arms differs, some arm's
/// weight moved by at least `min` (absolute), or the leader (the arm with the largest
/// weight, first on ties) changed. Smaller moves keep the current version, so a settled
/// experiment stops writing a version per refresh.
pub fn material_change(old: &[f64], new: &[f64], min: f64) -> bool {
    if old.len() != new.len() {
        return true;
    }
    // A non-finite weight always counts as a move.
    let moved = |(a, b): (&f64, &f64)| {
        let d = (a - b).abs();
        a != b && (d.is_nan() || d >= min)
    };
    if old.iter().zip(new).any(moved) {
        return true;
    }
    leader(old) != leader(new)
}

/// The arm with the largest weight, the first on ties; None for no arms.
fn leader(w: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &x) in w.iter().enumerate() {
        if best.is_none_or(|b| x > w[b]) {
            best = Some(i);
        }
    }
    best
}

/// One decision: the visitor's hash against the current weights. None: outside coverage.
#[inline]
pub fn decide(seed: &str, user_id: &str, weights: &[f64], coverage: f64) -> Option<usize> {
    hashing::choose(hashing::bucket(seed, user_id), weights, coverage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_keeps_every_arm_alive_and_sums_to_one() {
        let w = floor_weights(&[1.0, 0.0, 0.0], 0.05);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(w.iter().all(|&x| x >= 0.05 - 1e-15));
        assert_eq!(floor_weights(&[1.0, 0.0], 0.6), vec![0.5, 0.5]);
    }

    #[test]
    fn better_arm_gets_more_traffic() {
        let c = [
            ArmCounts { allocations: 1000, conversions: 50 },
            ArmCounts { allocations: 1000, conversions: 80 },
        ];
        let w = adaptive_weights(&c, 0.01, 0);
        assert!(w[1] > 0.9, "{w:?}");
        let w = adaptive_weights(&c, 0.01, 2000);
        assert_eq!(w, vec![0.5, 0.5], "burn-in keeps equal weights");
    }

    #[test]
    fn top_two_weights_match_the_algorithm() {
        // By hand for p = (0.6, 0.3, 0.1), β = ½:
        // w_0 = 0.3 + 0.5 (0.3·0.6/0.7 + 0.1·0.6/0.9) = 0.3 + 0.5 (0.257143 + 0.066667)
        let w = top_two_weights(&[0.6, 0.3, 0.1], 0.5);
        let w0 = 0.3 + 0.5 * (0.3 * 0.6 / 0.7 + 0.1 * 0.6 / 0.9);
        let w1 = 0.15 + 0.5 * (0.6 * 0.3 / 0.4 + 0.1 * 0.3 / 0.9);
        let w2 = 0.05 + 0.5 * (0.6 * 0.1 / 0.4 + 0.3 * 0.1 / 0.7);
        for (got, want) in w.iter().zip([w0, w1, w2]) {
            assert!((got - want).abs() < 1e-15, "{w:?}");
        }
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // A certain leader keeps β; the rest share the challenger's half equally.
        assert_eq!(top_two_weights(&[1.0, 0.0, 0.0], 0.5), vec![0.5, 0.25, 0.25]);
        // Two arms: w_0 = β p_0 + (1 - β) p_1, so β = ½ is an equal split whatever p is
        // (with two arms the challenger is always the other one).
        let w = top_two_weights(&[0.999, 0.001], 0.5);
        assert!((w[0] - 0.5).abs() < 1e-12 && (w[1] - 0.5).abs() < 1e-12, "{w:?}");
        // A Monte Carlo of the algorithm itself agrees (seeded).
        use rand::rngs::StdRng;
        use rand::{RngExt, SeedableRng};
        let p = [0.5, 0.3, 0.15, 0.05];
        let draw = |rng: &mut StdRng| {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            p.iter()
                .position(|&x| {
                    acc += x;
                    u < acc
                })
                .unwrap_or(p.len() - 1)
        };
        let mut rng = StdRng::seed_from_u64(3);
        let mut played = [0u32; 4];
        let n = 200_000;
        for _ in 0..n {
            let leader = draw(&mut rng);
            let arm = if rng.random::<f64>() < 0.5 {
                leader
            } else {
                loop {
                    let c = draw(&mut rng);
                    if c != leader {
                        break c;
                    }
                }
            };
            played[arm] += 1;
        }
        let w = top_two_weights(&p, 0.5);
        for (i, &c) in played.iter().enumerate() {
            let share = f64::from(c) / f64::from(n);
            assert!((share - w[i]).abs() < 0.005, "arm {i}: {share} vs {}", w[i]);
        }
    }

    #[test]
    fn top_two_keeps_the_runner_up_in_play() {
        let c = [
            ArmCounts { allocations: 1000, conversions: 50 },
            ArmCounts { allocations: 1000, conversions: 80 },
        ];
        let ts = policy_weights(Policy::Thompson, &c, 0.01, 0);
        let tt = policy_weights(Policy::TopTwo, &c, 0.01, 0);
        assert!(ts[1] > 0.9 && (tt[1] - 0.5).abs() < 0.01, "{ts:?} {tt:?}");
        assert_eq!(policy_weights(Policy::TopTwo, &c, 0.01, 2000), vec![0.5, 0.5]);
    }

    #[test]
    fn only_material_changes_publish() {
        let m = MIN_WEIGHT_CHANGE;
        assert!(!material_change(&[0.2, 0.8], &[0.2, 0.8], m), "equal weights");
        assert!(!material_change(&[0.2, 0.8], &[0.2049, 0.7951], m), "below the threshold");
        assert!(material_change(&[0.2, 0.8], &[0.205, 0.795], m), "at the threshold");
        assert!(material_change(&[0.2, 0.8], &[0.3, 0.7], m));
        assert!(material_change(&[0.5, 0.5], &[0.5], m), "arms added or removed");
        // A tiny move that swaps the leader publishes.
        assert!(material_change(&[0.501, 0.499], &[0.499, 0.501], m));
        // From equal weights (a tie: arm 0 leads) to a hair above for arm 1: a new leader.
        assert!(material_change(&[0.5, 0.5], &[0.4999, 0.5001], m));
        assert!(!material_change(&[0.5001, 0.4999], &[0.5002, 0.4998], m));
        // Non-finite weights never compare as small moves.
        assert!(material_change(&[0.5, 0.5], &[f64::NAN, 0.5], m));
        // A zero threshold publishes every change, as before.
        assert!(material_change(&[0.2, 0.8], &[0.2000001, 0.7999999], 0.0));
        assert!(!material_change(&[0.2, 0.8], &[0.2, 0.8], 0.0));
    }
}
