//! The counter rules: how an assignment or a conversion changes an experiment's per-arm
//! counters (allocations, the allocations SRM expects from the weights each visitor saw,
//! primary-goal conversions, the inverse-propensity sum, the value sum, the excluded count),
//! and hence its posteriors. Pure: no store, no I/O.
//!
//! Everything that counts calls these functions: the writer's hot batch (one record at a
//! time, as it commits), `recount` (from the stored records, to check or rebuild a state)
//! and the simulator. A rule changed here changes all of them together, so the incremental
//! state and the recounted one cannot drift apart.
//!
//! This is the one place to go when a single event has to count for more than one
//! experiment (funnels: one event fanned out to every experiment whose steps or time window
//! it falls in): decide there which experiments and arms it counts for, and count each with
//! these functions.

use serde::{Deserialize, Serialize};

use super::allocator::ArmCounts;
use super::stats::BetaPosterior;

/// The goal key of an experiment's own goal. Only conversions of this goal change the
/// counters; others are recorded (and exported) but count for nothing here.
pub const PRIMARY_GOAL: &str = "";

/// The largest conversion value, either sign: the tracker refuses `|value| > MAX_VALUE`
/// (422), so every arm's value sum stays an exact-enough finite number (a sum of bounded
/// values cannot come near `MAX_VALUE_SUM` within u64 conversions).
pub const MAX_VALUE: f64 = 1e12;

/// Where an arm's value sum saturates, either sign. Only records written before
/// `MAX_VALUE` was enforced can reach it; far below `f64::MAX`, so sums of arms stay finite.
pub const MAX_VALUE_SUM: f64 = 1e300;

/// Per-arm accumulators, updated in the same transaction as the records they count.
///
/// Stored as postcard inside the sealed bandit state: keep the field order and types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmState {
    pub allocations: u64,
    /// Conversions of the primary goal, once per visitor.
    pub conversions: u64,
    /// Σ of this arm's weight over every assignment: the count SRM expects.
    pub expected: f64,
    /// Σ 1/propensity over converting visitors: the inverse-propensity numerator.
    pub ipw_conversions: f64,
    pub value_sum: f64,
}

/// The bandit state of one experiment, stored sealed under the state key.
///
/// Stored as postcard: keep the field order and types, or sealed states stop opening.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BanditState {
    pub arms: Vec<ArmState>,
    pub weights: Vec<f64>,
    pub weights_version: u32,
    pub excluded: u64,
    pub refreshed_at: i64,
}

impl BanditState {
    pub fn new(k: usize, weights: Vec<f64>) -> BanditState {
        BanditState { arms: vec![ArmState::default(); k], weights, ..Default::default() }
    }

    pub fn visitors(&self) -> u64 {
        self.arms.iter().map(|a| a.allocations).sum()
    }

    pub fn conversions(&self) -> u64 {
        self.arms.iter().map(|a| a.conversions).sum()
    }
}

/// What is known of the weights a visitor saw when assigned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seen<'a> {
    /// The whole weight vector of the version the visitor saw.
    Weights(&'a [f64]),
    /// Only the visitor's own propensity (the stored weight history lacks that version).
    Propensity(f64),
}

/// An assignment to an arm the experiment does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmOutOfRange(pub usize);

/// Counts one new visitor: `arm` None is a visitor outside the traffic share (excluded).
/// An arm out of range changes nothing and is an error.
pub fn count_assignment(
    st: &mut BanditState,
    arm: Option<usize>,
    seen: Seen<'_>,
) -> Result<(), ArmOutOfRange> {
    let Some(arm) = arm else {
        st.excluded += 1;
        return Ok(());
    };
    if arm >= st.arms.len() {
        return Err(ArmOutOfRange(arm));
    }
    st.arms[arm].allocations += 1;
    match seen {
        Seen::Weights(ws) => {
            for (s, w) in st.arms.iter_mut().zip(ws) {
                s.expected += w;
            }
        }
        Seen::Propensity(p) => {
            // Credit the propensity to the visitor's own arm and spread the rest evenly,
            // which keeps the total exact.
            let rest = (1.0 - p) / (st.arms.len().max(2) - 1) as f64;
            for (i, s) in st.arms.iter_mut().enumerate() {
                s.expected += if i == arm { p } else { rest };
            }
        }
    }
    Ok(())
}

/// Whether a conversion of `goal` changes the counters (the primary-goal rule).
pub fn counts_goal(goal: &str) -> bool {
    goal == PRIMARY_GOAL
}

/// Counts a (first, primary-goal) conversion of a visitor assigned to `arm` with
/// `propensity`. Returns false, changing nothing, for an arm out of range.
pub fn count_conversion(
    st: &mut BanditState,
    arm: usize,
    propensity: f64,
    value: Option<f64>,
) -> bool {
    let Some(a) = st.arms.get_mut(arm) else { return false };
    a.conversions += 1;
    a.ipw_conversions += 1.0 / propensity.max(1e-12);
    a.value_sum = add_value(a.value_sum, value.unwrap_or(0.0));
    true
}

/// `sum + value`, kept finite whatever was stored before the bound: a value is clamped to
/// ±`MAX_VALUE` (NaN counts as 0), and the sum saturates at ±`MAX_VALUE_SUM` (a sum that is
/// already NaN, which only old data can hold, restarts from 0).
pub fn add_value(sum: f64, value: f64) -> f64 {
    let value = if value.is_nan() { 0.0 } else { value.clamp(-MAX_VALUE, MAX_VALUE) };
    let sum = if sum.is_nan() { 0.0 } else { sum };
    (sum + value).clamp(-MAX_VALUE_SUM, MAX_VALUE_SUM)
}

/// The Beta posterior of an arm under the uniform prior.
pub fn posterior_of(a: &ArmState) -> BetaPosterior {
    BetaPosterior::from_counts(a.allocations, a.conversions)
}

/// What the allocator reads of each arm.
pub fn arm_counts(st: &BanditState) -> Vec<ArmCounts> {
    st.arms
        .iter()
        .map(|a| ArmCounts { allocations: a.allocations, conversions: a.conversions })
        .collect()
}

/// A posterior's shapes as whole counts (uniform prior), as the audit log records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PosteriorCounts {
    pub alpha: u64,
    pub beta: u64,
}

/// The payload of a `weights.updated` audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightsUpdate<'a> {
    pub version: u32,
    pub weights: &'a [f64],
    pub posterior: Vec<PosteriorCounts>,
}

pub fn weights_update(st: &BanditState) -> WeightsUpdate<'_> {
    WeightsUpdate {
        version: st.weights_version,
        weights: &st.weights,
        posterior: st
            .arms
            .iter()
            .map(|a| PosteriorCounts {
                alpha: 1 + a.conversions,
                beta: 1 + a.allocations.saturating_sub(a.conversions),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::collections::{BTreeMap, HashMap};

    /// A stored assignment, as far as counting cares.
    #[derive(Clone, Copy)]
    struct Asg {
        arm: Option<usize>,
        version: u32,
        propensity: f64,
    }

    /// Weight versions of powers of two, so every sum below (weights, 1/propensity) is
    /// exact in any order: incremental and recounted states can then be compared exactly.
    fn versions() -> Vec<Vec<f64>> {
        vec![
            vec![0.25, 0.25, 0.25, 0.25],
            vec![0.5, 0.25, 0.125, 0.125],
            vec![0.125, 0.125, 0.25, 0.5],
            vec![0.5, 0.125, 0.125, 0.25],
        ]
    }

    /// Counts from the final records as `recount` does: assignments in key order, each with
    /// its primary-goal conversion, weights from the history when it has the version.
    fn from_records(
        k: usize,
        history: &HashMap<u32, Vec<f64>>,
        asg: &BTreeMap<String, Asg>,
        conv: &BTreeMap<(String, String), Option<f64>>,
    ) -> BanditState {
        let mut st = BanditState::new(k, vec![1.0 / k as f64; k]);
        for (user, a) in asg {
            let seen = match history.get(&a.version) {
                Some(ws) => Seen::Weights(ws),
                None => Seen::Propensity(a.propensity),
            };
            count_assignment(&mut st, a.arm, seen).unwrap();
            let Some(arm) = a.arm else { continue };
            if let Some(value) = conv.get(&(user.clone(), PRIMARY_GOAL.to_string())) {
                assert!(count_conversion(&mut st, arm, a.propensity, *value));
            }
        }
        st
    }

    #[test]
    fn incremental_and_recounted_states_agree() {
        let k = 4;
        let vs = versions();
        for seed in 0..20u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            // Some versions are missing from the history: the propensity fallback.
            let history: HashMap<u32, Vec<f64>> = vs
                .iter()
                .enumerate()
                .filter(|(v, _)| *v != 3 || seed % 2 == 0)
                .map(|(v, w)| (v as u32, w.clone()))
                .collect();
            let mut live = BanditState::new(k, vec![1.0 / k as f64; k]);
            let mut asg: BTreeMap<String, Asg> = BTreeMap::new();
            let mut conv: BTreeMap<(String, String), Option<f64>> = BTreeMap::new();
            for _ in 0..2_000 {
                let user = format!("u{}", rng.random_range(0..400u32));
                if rng.random::<f64>() < 0.5 {
                    if asg.contains_key(&user) {
                        continue; // sticky: an existing assignment counts nothing
                    }
                    let version = rng.random_range(0..vs.len() as u32);
                    let ws = &vs[version as usize];
                    let arm = (rng.random::<f64>() >= 0.1).then(|| rng.random_range(0..k));
                    let propensity = arm.map(|a| ws[a]).unwrap_or(0.0);
                    // The writer counts with the weights the visitor saw, always known live.
                    count_assignment(&mut live, arm, Seen::Weights(ws)).unwrap();
                    asg.insert(user, Asg { arm, version, propensity });
                } else {
                    let Some(a) = asg.get(&user).copied() else { continue };
                    let Some(arm) = a.arm else { continue }; // excluded: not recorded
                    let goal = if rng.random::<f64>() < 0.7 { PRIMARY_GOAL } else { "signup" };
                    let key = (user, goal.to_string());
                    if conv.contains_key(&key) {
                        continue; // duplicate
                    }
                    let value = (rng.random::<f64>() < 0.5)
                        .then(|| f64::from(rng.random_range(0..64u32)) / 4.0);
                    if counts_goal(goal) {
                        assert!(count_conversion(&mut live, arm, a.propensity, value));
                    }
                    conv.insert(key, value);
                }
            }
            let mut recounted = from_records(k, &history, &asg, &conv);
            if seed % 2 == 1 {
                // Without version 3 in the history the expected counts come from the
                // fallback, which spreads 1 - p evenly instead of by the real weights.
                let total = |s: &BanditState| s.arms.iter().map(|a| a.expected).sum::<f64>();
                assert!((total(&live) - total(&recounted)).abs() < 1e-9);
                for (l, r) in live.arms.iter_mut().zip(&mut recounted.arms) {
                    l.expected = 0.0;
                    r.expected = 0.0;
                }
            }
            assert_eq!(live, recounted, "seed {seed}");
            assert!(live.excluded > 0 && live.conversions() > 0, "the sequence covers both");
        }
    }

    #[test]
    fn only_the_primary_goal_counts() {
        assert!(counts_goal(PRIMARY_GOAL));
        assert!(!counts_goal("signup"));
        let mut st = BanditState::new(2, vec![0.5, 0.5]);
        count_assignment(&mut st, Some(1), Seen::Weights(&[0.5, 0.5])).unwrap();
        for goal in ["signup", PRIMARY_GOAL, "purchase"] {
            if counts_goal(goal) {
                count_conversion(&mut st, 1, 0.5, Some(3.0));
            }
        }
        assert_eq!(st.conversions(), 1);
        assert_eq!(st.arms[1].ipw_conversions, 2.0);
        assert_eq!(st.arms[1].value_sum, 3.0);
    }

    #[test]
    fn value_sums_stay_finite_whatever_the_values() {
        let mut st = BanditState::new(2, vec![0.5, 0.5]);
        for _ in 0..2 {
            count_conversion(&mut st, 0, 0.5, Some(1e308));
        }
        assert_eq!(st.arms[0].value_sum, 2.0 * MAX_VALUE, "each value is clamped to the bound");
        count_conversion(&mut st, 1, 0.5, Some(f64::NEG_INFINITY));
        count_conversion(&mut st, 1, 0.5, Some(f64::NAN));
        assert_eq!(st.arms[1].value_sum, -MAX_VALUE);
        assert_eq!(add_value(1.5, MAX_VALUE), 1.5 + MAX_VALUE, "values up to the bound count");
        assert_eq!(add_value(1.5, -2.5), -1.0);
        // A sum stored before the bound saturates instead of overflowing.
        assert_eq!(add_value(f64::INFINITY, 1.0), MAX_VALUE_SUM);
        assert_eq!(add_value(f64::MAX, MAX_VALUE), MAX_VALUE_SUM);
        assert_eq!(add_value(f64::NEG_INFINITY, -1.0), -MAX_VALUE_SUM);
        assert_eq!(add_value(f64::NAN, 2.0), 2.0);
        assert_eq!(add_value(MAX_VALUE_SUM, MAX_VALUE), MAX_VALUE_SUM);
    }

    #[test]
    fn excluded_visitors_count_only_as_excluded() {
        let mut st = BanditState::new(2, vec![0.5, 0.5]);
        count_assignment(&mut st, None, Seen::Weights(&[0.5, 0.5])).unwrap();
        count_assignment(&mut st, None, Seen::Propensity(0.0)).unwrap();
        assert_eq!(st.excluded, 2);
        assert_eq!(st.visitors(), 0);
        assert!(st.arms.iter().all(|a| a.expected == 0.0));
        assert_eq!(
            count_assignment(&mut st, Some(2), Seen::Propensity(0.5)),
            Err(ArmOutOfRange(2))
        );
        assert!(!count_conversion(&mut st, 2, 0.5, None));
        assert_eq!(st, BanditState { excluded: 2, ..BanditState::new(2, vec![0.5, 0.5]) });
    }

    #[test]
    fn a_missing_weights_version_spreads_the_rest_evenly() {
        let mut st = BanditState::new(4, vec![0.25; 4]);
        count_assignment(&mut st, Some(2), Seen::Propensity(0.625)).unwrap();
        let expected: Vec<f64> = st.arms.iter().map(|a| a.expected).collect();
        assert_eq!(expected, vec![0.125, 0.125, 0.625, 0.125]);
        assert_eq!(st.arms[2].allocations, 1);
        // One arm: the whole propensity goes to it.
        let mut one = BanditState::new(1, vec![1.0]);
        count_assignment(&mut one, Some(0), Seen::Propensity(1.0)).unwrap();
        assert_eq!(one.arms[0].expected, 1.0);
    }

    #[test]
    fn a_conversion_with_zero_propensity_stays_finite() {
        let mut st = BanditState::new(2, vec![1.0, 0.0]);
        count_assignment(&mut st, Some(1), Seen::Weights(&[1.0, 0.0])).unwrap();
        count_conversion(&mut st, 1, 0.0, None);
        assert_eq!(st.arms[1].ipw_conversions, 1e12);
    }

    #[test]
    fn the_audit_payload_keeps_its_shape() {
        let mut st = BanditState::new(2, vec![0.25, 0.75]);
        st.weights_version = 3;
        st.arms[0] = ArmState { allocations: 10, conversions: 4, ..Default::default() };
        let v = serde_json::to_value(weights_update(&st)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"version": 3, "weights": [0.25, 0.75],
                "posterior": [{"alpha": 5, "beta": 7}, {"alpha": 1, "beta": 1}]})
        );
        assert_eq!(posterior_of(&st.arms[0]), BetaPosterior { alpha: 5.0, beta: 7.0 });
    }

    /// The postcard layout of the sealed state, pinned: field order and types.
    #[test]
    fn the_stored_layout_is_unchanged() {
        let st = BanditState {
            arms: vec![ArmState {
                allocations: 2,
                conversions: 1,
                expected: 0.5,
                ipw_conversions: 2.0,
                value_sum: 0.0,
            }],
            weights: vec![1.0],
            weights_version: 7,
            excluded: 3,
            refreshed_at: -1,
        };
        let bytes = postcard::to_allocvec(&st).unwrap();
        let mut want = vec![1, 2, 1];
        want.extend(0.5f64.to_le_bytes());
        want.extend(2.0f64.to_le_bytes());
        want.extend(0.0f64.to_le_bytes());
        want.push(1);
        want.extend(1.0f64.to_le_bytes());
        want.extend([7, 3, 1]);
        assert_eq!(bytes, want);
        assert_eq!(postcard::from_bytes::<BanditState>(&bytes).unwrap(), st);
    }
}
