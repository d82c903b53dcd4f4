//! Synthetic Bernoulli traffic through the production allocator: the same weights
//! (`allocator::adaptive_weights`) and the same bucketing (`hashing::choose` against a
//! uniform bucket at the hash's 1/10000 resolution), so the simulator's regret is the
//! engine's regret. Visitors and conversions are counted by the server's own rules
//! (`counting`). Seeded and reproducible.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::allocator;
use super::counting::{self, BanditState, Seen};
use super::decision::{self, Decision, Thresholds};
use super::hashing;
use super::sequential;
use super::stats::{self, BetaPosterior};

/// The probability of being best at which `visitors_to_confidence` counts the truly best
/// arm as found.
pub const CONFIDENCE: f64 = 0.95;

/// When a repetition stops: never (the whole horizon), or at the first `declare_winner` or
/// `stop_no_difference` of the sequential or the Bayesian recommendation, checked at every
/// weight refresh as a person watching the dashboard would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopRule {
    #[default]
    None,
    Sequential,
    Bayesian,
}

impl StopRule {
    pub fn parse(s: &str) -> Option<StopRule> {
        match s {
            "none" => Some(StopRule::None),
            "sequential" => Some(StopRule::Sequential),
            "bayesian" => Some(StopRule::Bayesian),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StopRule::None => "none",
            StopRule::Sequential => "sequential",
            StopRule::Bayesian => "bayesian",
        }
    }
}

pub const MAX_VISITORS: u64 = 1_000_000;
pub const MAX_REPETITIONS: u32 = 100;
pub const MAX_ARMS: usize = 64;
const TIMELINE_POINTS: u64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Adaptive,
    Fixed,
    /// Top-two Thompson sampling (`allocator::Policy::TopTwo`).
    FastLearning,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        match s {
            "adaptive" => Some(Strategy::Adaptive),
            "fixed" => Some(Strategy::Fixed),
            "fast_learning" => Some(Strategy::FastLearning),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Adaptive => "adaptive",
            Strategy::Fixed => "fixed",
            Strategy::FastLearning => "fast_learning",
        }
    }

    /// The weights policy of an adaptive strategy; None for the fixed split.
    pub fn policy(self) -> Option<allocator::Policy> {
        match self {
            Strategy::Adaptive => Some(allocator::Policy::Thompson),
            Strategy::FastLearning => Some(allocator::Policy::TopTwo),
            Strategy::Fixed => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Setup {
    pub true_rates: Vec<f64>,
    pub visitors: u64,
    pub floor: f64,
    pub burn_in: u64,
    /// Visitors between two weight refreshes (and checks of the recommendation).
    pub update_every: u64,
    pub stop_rule: StopRule,
    /// The Bayesian rule's thresholds (`engine.*`); `loss` and `min_sample` serve the
    /// sequential rule too.
    pub thresholds: Thresholds,
    /// The sequential rule's error rate over all arms (`engine.sequential_alpha`).
    pub alpha: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub visitors: u64,
    pub allocations: Vec<f64>,
    pub conversions: f64,
    pub regret: f64,
}

/// One run: totals and a timeline of about 50 evenly spaced points.
#[derive(Debug, Clone)]
pub struct Run {
    pub conversions: u64,
    pub regret: f64,
    pub allocations: Vec<u64>,
    /// Conversions per arm.
    pub arm_conversions: Vec<u64>,
    /// Inverse-propensity estimate of each arm's rate: (1/N) Σ y / p over its visitors.
    pub ipw_rates: Vec<f64>,
    pub timeline: Vec<Point>,
    /// Visitors when the stop rule stopped the run; None when it ran the whole horizon.
    pub stopped_at: Option<u64>,
    /// The arm declared the winner at the stop.
    pub declared: Option<usize>,
    /// Visitors when the truly best arm's P(best) first reached [`CONFIDENCE`].
    pub confident_at: Option<u64>,
}

/// The mean over repetitions, with the standard error of the mean regret.
#[derive(Debug, Clone)]
pub struct Summary {
    pub strategy: Strategy,
    pub conversions: f64,
    pub regret: f64,
    pub regret_se: f64,
    pub allocations: Vec<f64>,
    pub timeline: Vec<Point>,
    /// What the floor alone costs: floor × Σ gaps × visitors.
    pub floor_cost: f64,
    pub stopping: Stopping,
    /// Mean over the repetitions that got there of the visitors until the truly best arm's
    /// P(best) first reached [`CONFIDENCE`]; None when none did.
    pub visitors_to_confidence: Option<f64>,
    /// The share of repetitions that got there.
    pub confidence_share: f64,
}

/// What the stop rule did over the repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stopping {
    /// Visitors per repetition until it stopped (the horizon when it did not).
    pub mean_visitors: f64,
    pub stopped_share: f64,
    pub declared_winner_share: f64,
    /// Declarations of an arm with the highest true rate; when all rates are equal, none
    /// is correct.
    pub correct_winner_share: f64,
}

/// Tells the caller how many more visitors were simulated (every 10,000, then the rest) and
/// asks whether to go on: `false` stops the work, so an abandoned request stops computing.
pub type Progress<'a> = &'a mut dyn FnMut(u64) -> bool;

/// One seeded run; `None` when `progress` asked to stop.
pub fn run(setup: &Setup, strategy: Strategy, seed: u64, progress: Progress<'_>) -> Option<Run> {
    let k = setup.true_rates.len();
    let best = setup.true_rates.iter().copied().fold(f64::MIN, f64::max);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut weights = vec![1.0 / k as f64; k];
    let mut st = BanditState::new(k, weights.clone());
    let mut regret = 0.0;
    let mut conversions = 0u64;
    let every = setup.update_every.max(1);
    let step = (setup.visitors / TIMELINE_POINTS).max(1);
    let mut timeline = Vec::with_capacity(TIMELINE_POINTS as usize + 1);
    // The truly best arm (the first of equals) whose P(best) visitors_to_confidence follows.
    let truth = setup.true_rates.iter().position(|&r| r == best).unwrap_or(0);
    let names: Vec<String> = (0..k).map(|i| format!("arm {i}")).collect();
    let (mut stopped_at, mut declared, mut confident_at) = (None, None, None);
    let mut reported = 0u64;
    for v in 0..setup.visitors {
        if v % every == 0 && v > 0 {
            // A check: the posteriors once, for the weights, the confidence and the rules.
            let counts = counting::arm_counts(&st);
            let posts: Vec<BetaPosterior> = counts
                .iter()
                .map(|c| BetaPosterior::from_counts(c.allocations, c.conversions))
                .collect();
            let summary = (setup.stop_rule == StopRule::Bayesian).then(|| stats::summarize(&posts));
            let pb = match &summary {
                Some(s) => s.iter().map(|a| a.prob_best).collect(),
                None => stats::prob_best(&posts),
            };
            if confident_at.is_none() && pb[truth] >= CONFIDENCE {
                confident_at = Some(v);
            }
            let allocations: Vec<u64> = counts.iter().map(|c| c.allocations).collect();
            let rec = match (&summary, setup.stop_rule) {
                (Some(s), _) => {
                    Some(decision::recommend(&names, &allocations, s, &setup.thresholds))
                }
                (None, StopRule::Sequential) => {
                    let ac: Vec<(u64, u64)> =
                        counts.iter().map(|c| (c.allocations, c.conversions)).collect();
                    let t = &setup.thresholds;
                    Some(
                        sequential::recommend(&names, &ac, setup.alpha, t.loss, t.min_sample)
                            .recommendation,
                    )
                }
                (None, _) => None,
            };
            if let Some(r) = rec
                && r.decision != Decision::KeepRunning
            {
                stopped_at = Some(v);
                declared = r.winner;
                break;
            }
            if let Some(policy) = strategy.policy() {
                weights = allocator::weights_from_prob_best(
                    policy,
                    &pb,
                    &counts,
                    setup.floor,
                    setup.burn_in,
                );
            }
        }
        let n = f64::from(rng.random_range(0..10_000u32)) / 10_000.0;
        let arm = hashing::choose(n, &weights, 1.0).unwrap_or(k - 1);
        counting::count_assignment(&mut st, Some(arm), Seen::Weights(&weights))
            .expect("choose returns an arm of the setup");
        let rate = setup.true_rates[arm];
        regret += best - rate;
        if rng.random::<f64>() < rate {
            counting::count_conversion(&mut st, arm, weights[arm], None);
            conversions += 1;
        }
        if (v + 1) % step == 0 || v + 1 == setup.visitors {
            timeline.push(Point {
                visitors: v + 1,
                allocations: st.arms.iter().map(|a| a.allocations as f64).collect(),
                conversions: conversions as f64,
                regret,
            });
        }
        if (v + 1) % 10_000 == 0 {
            reported += 10_000;
            if !progress(10_000) {
                return None;
            }
        }
    }
    // A stopped run keeps its last state for the rest of the timeline, so repetitions that
    // stopped at different times still average point by point.
    if let Some(at) = stopped_at {
        let last = timeline.last().cloned().unwrap_or(Point {
            visitors: 0,
            allocations: vec![0.0; k],
            conversions: 0.0,
            regret: 0.0,
        });
        let mut t = (at / step + 1) * step;
        while t <= setup.visitors {
            timeline.push(Point { visitors: t, ..last.clone() });
            t += step;
        }
        if !setup.visitors.is_multiple_of(step) && at < setup.visitors {
            timeline.push(Point { visitors: setup.visitors, ..last });
        }
    }
    if !progress(setup.visitors - reported) {
        return None;
    }
    // The estimate over the visitors the run saw.
    let n = stopped_at.unwrap_or(setup.visitors).max(1) as f64;
    Some(Run {
        conversions,
        regret,
        allocations: st.arms.iter().map(|a| a.allocations).collect(),
        arm_conversions: st.arms.iter().map(|a| a.conversions).collect(),
        ipw_rates: st.arms.iter().map(|a| a.ipw_conversions / n).collect(),
        timeline,
        stopped_at,
        declared,
        confident_at,
    })
}

/// Runs `repetitions` seeded runs (seed, seed+1, ...) and averages them; `None` when
/// `progress` asked to stop.
pub fn simulate(
    setup: &Setup,
    strategy: Strategy,
    seed: u64,
    repetitions: u32,
    progress: Progress<'_>,
) -> Option<Summary> {
    let reps = repetitions.max(1);
    let runs: Vec<Run> = (0..reps)
        .map(|r| run(setup, strategy, seed.wrapping_add(u64::from(r)), progress))
        .collect::<Option<_>>()?;
    let n = f64::from(reps);
    let k = setup.true_rates.len();
    let mean = |f: &dyn Fn(&Run) -> f64| runs.iter().map(f).sum::<f64>() / n;
    let regret = mean(&|r| r.regret);
    let var = if reps > 1 {
        runs.iter().map(|r| (r.regret - regret).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let timeline = (0..runs[0].timeline.len())
        .map(|i| Point {
            visitors: runs[0].timeline[i].visitors,
            allocations: (0..k)
                .map(|a| runs.iter().map(|r| r.timeline[i].allocations[a]).sum::<f64>() / n)
                .collect(),
            conversions: runs.iter().map(|r| r.timeline[i].conversions).sum::<f64>() / n,
            regret: runs.iter().map(|r| r.timeline[i].regret).sum::<f64>() / n,
        })
        .collect();
    let best = setup.true_rates.iter().copied().fold(f64::MIN, f64::max);
    let gaps: f64 = setup.true_rates.iter().map(|r| best - r).sum();
    let share = |f: &dyn Fn(&Run) -> bool| runs.iter().filter(|r| f(r)).count() as f64 / n;
    let all_equal = setup.true_rates.iter().all(|&r| r == best);
    let correct = |w: usize| !all_equal && setup.true_rates.get(w) == Some(&best);
    let confident: Vec<f64> =
        runs.iter().filter_map(|r| r.confident_at).map(|v| v as f64).collect();
    Some(Summary {
        strategy,
        conversions: mean(&|r| r.conversions as f64),
        regret,
        regret_se: (var / n).sqrt(),
        allocations: (0..k)
            .map(|a| runs.iter().map(|r| r.allocations[a] as f64).sum::<f64>() / n)
            .collect(),
        timeline,
        floor_cost: if strategy.policy().is_some() {
            setup.floor * gaps * setup.visitors as f64
        } else {
            0.0
        },
        stopping: Stopping {
            mean_visitors: mean(&|r| r.stopped_at.unwrap_or(setup.visitors) as f64),
            stopped_share: share(&|r| r.stopped_at.is_some()),
            declared_winner_share: share(&|r| r.declared.is_some()),
            correct_winner_share: share(&|r| r.declared.is_some_and(&correct)),
        },
        visitors_to_confidence: (!confident.is_empty())
            .then(|| confident.iter().sum::<f64>() / confident.len() as f64),
        confidence_share: confident.len() as f64 / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(visitors: u64) -> Setup {
        let mut rates = vec![0.4; 10];
        rates[0] = 0.5;
        Setup {
            true_rates: rates,
            visitors,
            floor: 0.0,
            burn_in: 0,
            update_every: 100,
            stop_rule: StopRule::None,
            thresholds: Thresholds { prob_best: 0.95, loss: 0.001, min_sample: 100 },
            alpha: 0.05,
        }
    }

    #[test]
    fn seeded_runs_reproduce() {
        let s = setup(5_000);
        let a = run(&s, Strategy::Adaptive, 7, &mut |_| true).unwrap();
        let b = run(&s, Strategy::Adaptive, 7, &mut |_| true).unwrap();
        assert_eq!(a.allocations, b.allocations);
        assert_eq!(a.conversions, b.conversions);
        assert_eq!(a.timeline.len(), 50);
    }

    #[test]
    fn fixed_split_regret_is_the_uniform_gap() {
        // Nine arms 0.1 behind, equal split: regret = 0.9 * 0.1 * visitors = 9,000 at 1e5.
        let s = setup(100_000);
        let f = simulate(&s, Strategy::Fixed, 1, 1, &mut |_| true).unwrap();
        assert!((f.regret - 9_000.0).abs() < 150.0, "{}", f.regret);
    }

    /// Chapelle & Li (2011): best arm 0.5, nine at 0.4, refresh every 100 visitors, no
    /// floor. Our numpy reproduction of Thompson sampling gives mean regret ≈ 248 (SE 4 over
    /// 100 repetitions) at 1e5 visitors; the fixed split's is 9,000.
    #[test]
    fn regret_matches_thompson_sampling_published_behaviour() {
        let s = setup(100_000);
        let a = simulate(&s, Strategy::Adaptive, 11, 20, &mut |_| true).unwrap();
        assert!(
            (a.regret - 248.0).abs() < 4.0 * (a.regret_se.max(4.0)),
            "regret {} ± {}",
            a.regret,
            a.regret_se
        );
        assert!(a.regret < 400.0);
    }

    /// Adaptive allocation biases the naive per-arm rate of losing arms downwards (they
    /// stop being sampled after an unlucky streak); the inverse-propensity estimate that
    /// analytics reports is unbiased. K=10, ε=0.1, 1e4 visitors.
    #[test]
    fn inverse_propensity_removes_the_adaptive_bias() {
        let mut s = setup(10_000);
        s.floor = 0.01;
        let reps = 300;
        let (mut naive, mut ipw, mut n) = (0.0, 0.0, 0.0);
        for r in 0..reps {
            let run = run(&s, Strategy::Adaptive, 1000 + r, &mut |_| true).unwrap();
            for arm in 1..10 {
                if run.allocations[arm] > 0 {
                    naive += run.arm_conversions[arm] as f64 / run.allocations[arm] as f64 - 0.4;
                    ipw += run.ipw_rates[arm] - 0.4;
                    n += 1.0;
                }
            }
        }
        let (naive, ipw) = (naive / n, ipw / n);
        assert!(naive < -0.01, "the naive mean is biased here: {naive}");
        assert!(ipw.abs() < 0.005, "inverse-propensity bias {ipw} (naive {naive})");
    }

    /// A run stopped by its rule keeps a full timeline (its last state carried forward) and
    /// still reports every visitor of the horizon to the progress bar.
    #[test]
    fn a_stopped_run_keeps_its_timeline_and_progress() {
        let mut s = setup(30_007);
        s.true_rates = vec![0.05, 0.5];
        s.stop_rule = StopRule::Sequential;
        let mut seen = 0;
        let r = run(&s, Strategy::Fixed, 3, &mut |n| {
            seen += n;
            true
        })
        .unwrap();
        assert_eq!(seen, 30_007);
        let at = r.stopped_at.expect("a 45-point gap is found quickly");
        assert!(at < 1_000 && r.declared == Some(1), "{at} {:?}", r.declared);
        assert_eq!(r.allocations.iter().sum::<u64>(), at);
        assert_eq!(r.timeline.len(), 51, "50 steps of 600 and the horizon");
        assert_eq!(r.timeline.last().map(|p| p.visitors), Some(30_007));
        assert!(r.timeline.windows(2).all(|w| w[1].visitors > w[0].visitors));
        let unstopped = run(&setup(30_007), Strategy::Fixed, 3, &mut |_| true).unwrap();
        assert_eq!(unstopped.timeline.len(), r.timeline.len());
        assert!(r.confident_at.is_some_and(|c| c <= at));
    }

    #[test]
    fn progress_counts_every_visitor() {
        let s = setup(25_123);
        let mut seen = 0;
        run(&s, Strategy::Fixed, 1, &mut |n| {
            seen += n;
            true
        })
        .unwrap();
        assert_eq!(seen, 25_123);
    }

    /// The stop flag a request's drop guard sets: the run ends at the next check (every
    /// 10,000 visitors), not at the end.
    #[test]
    fn a_set_flag_stops_the_run_early() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let s = setup(1_000_000);
        let stop = AtomicBool::new(false);
        let mut seen = 0;
        let out = simulate(&s, Strategy::Adaptive, 1, 100, &mut |n| {
            seen += n;
            if seen >= 30_000 {
                stop.store(true, Ordering::Relaxed);
            }
            !stop.load(Ordering::Relaxed)
        });
        assert!(out.is_none(), "a stopped run has no summary");
        assert_eq!(seen, 30_000, "stopped at the first check after the flag was set");
    }
}
