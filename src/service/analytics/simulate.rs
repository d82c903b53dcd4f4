//! The simulator as a use-case: validate a request, run it off the async workers, and
//! render the answer of `POST /simulate` (and `samplit simulate`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::EngineConfig;
use crate::engine::decision::Thresholds;
use crate::engine::simulator::{
    self, MAX_ARMS, MAX_REPETITIONS, MAX_VISITORS, Setup, StopRule, Strategy,
};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimArm {
    #[serde(default)]
    pub name: Option<String>,
    pub true_rate: f64,
}

/// The body of POST /simulate.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimRequest {
    pub arms: Vec<SimArm>,
    pub visitors: u64,
    #[serde(default)]
    pub strategies: Option<Vec<String>>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub repetitions: Option<u32>,
    #[serde(default)]
    pub floor: Option<f64>,
    #[serde(default)]
    pub update_every: Option<u64>,
    #[serde(default)]
    pub burn_in: Option<u64>,
    /// `none` (the default), `sequential` or `bayesian`: a repetition stops at that rule's
    /// first `declare_winner` or `stop_no_difference`, checked at every refresh.
    #[serde(default)]
    pub stop_rule: Option<String>,
}

/// Visitors between posterior refreshes when the request does not say: about what the
/// server's time-based refresh amounts to at a few hundred visitors a second.
pub const DEFAULT_UPDATE_EVERY: u64 = 100;

pub struct Plan {
    pub setup: Setup,
    pub strategies: Vec<Strategy>,
    pub seed: u64,
    pub repetitions: u32,
    pub names: Vec<String>,
}

impl Plan {
    /// Checks × arms: what the exact quadrature costs. Every strategy computes P(best) at
    /// every check (for `visitors_to_confidence` and the stop rule; the adaptive ones reuse
    /// it for their weights).
    pub fn refresh_work(&self) -> u64 {
        self.strategies.len() as u64
            * (self.setup.visitors / self.setup.update_every.max(1))
            * u64::from(self.repetitions)
            * self.setup.true_rates.len() as u64
    }

    /// Total visitors the plan simulates, for a progress bar.
    pub fn work(&self) -> u64 {
        self.setup.visitors * u64::from(self.repetitions) * self.strategies.len() as u64
    }
}

/// The most arm-refreshes (weight refreshes × arms) one public request may ask for: about
/// a minute of one core. The CLI has no such bound.
pub const PUBLIC_REFRESH_BUDGET: u64 = 20_000_000;

/// Validates a request; `engine` gives the default floor and the thresholds of the stop
/// rules (the server's own, so a simulated stop is the recommendation's).
pub fn plan(req: SimRequest, engine: &EngineConfig) -> AppResult<Plan> {
    let default_floor = engine.floor;
    if req.arms.len() < 2 || req.arms.len() > MAX_ARMS {
        return Err(AppError::validation("arms", format!("needs 2 to {MAX_ARMS} arms")));
    }
    for (i, a) in req.arms.iter().enumerate() {
        if !(0.0..=1.0).contains(&a.true_rate) {
            return Err(AppError::validation(format!("arms[{i}].true_rate"), "must be in [0, 1]"));
        }
    }
    if req.visitors == 0 || req.visitors > MAX_VISITORS {
        return Err(AppError::validation("visitors", format!("must be 1 to {MAX_VISITORS}")));
    }
    let repetitions = req.repetitions.unwrap_or(1);
    if repetitions == 0 || repetitions > MAX_REPETITIONS {
        return Err(AppError::validation("repetitions", format!("must be 1 to {MAX_REPETITIONS}")));
    }
    let floor = req.floor.unwrap_or(default_floor);
    if !(0.0..0.5).contains(&floor) || floor * req.arms.len() as f64 > 1.0 {
        return Err(AppError::validation(
            "floor",
            "must be at least 0, below 0.5, and at most 1/arms",
        ));
    }
    let update_every = req.update_every.unwrap_or(DEFAULT_UPDATE_EVERY);
    if update_every == 0 || update_every > MAX_VISITORS {
        return Err(AppError::validation("update_every", format!("must be 1 to {MAX_VISITORS}")));
    }
    let names_in = req.strategies.unwrap_or_else(|| vec!["adaptive".into(), "fixed".into()]);
    if names_in.is_empty() {
        return Err(AppError::validation(
            "strategies",
            "needs at least one of adaptive, fixed, fast_learning",
        ));
    }
    let mut strategies = Vec::new();
    for (i, s) in names_in.iter().enumerate() {
        let st = Strategy::parse(s).ok_or_else(|| {
            AppError::validation(
                format!("strategies[{i}]"),
                "must be adaptive, fixed or fast_learning",
            )
        })?;
        if !strategies.contains(&st) {
            strategies.push(st);
        }
    }
    let stop_rule = match req.stop_rule.as_deref() {
        None => StopRule::None,
        Some(s) => StopRule::parse(s).ok_or_else(|| {
            AppError::validation("stop_rule", "must be none, sequential or bayesian")
        })?,
    };
    let names = req
        .arms
        .iter()
        .enumerate()
        .map(|(i, a)| a.name.clone().unwrap_or_else(|| format!("Arm {}", i + 1)))
        .collect();
    Ok(Plan {
        setup: Setup {
            true_rates: req.arms.iter().map(|a| a.true_rate).collect(),
            visitors: req.visitors,
            floor,
            burn_in: req.burn_in.unwrap_or(0),
            update_every,
            stop_rule,
            thresholds: Thresholds {
                prob_best: engine.prob_best_threshold,
                loss: engine.loss_threshold,
                min_sample: engine.min_sample,
            },
            alpha: engine.sequential_alpha,
        },
        strategies,
        seed: req.seed.unwrap_or_else(rand::random),
        repetitions,
        names,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    Adaptive,
    Fixed,
    FastLearning,
}

impl From<Strategy> for StrategyName {
    fn from(s: Strategy) -> StrategyName {
        match s {
            Strategy::Adaptive => StrategyName::Adaptive,
            Strategy::Fixed => StrategyName::Fixed,
            Strategy::FastLearning => StrategyName::FastLearning,
        }
    }
}

/// One of about 50 evenly spaced points of a strategy's run (means over repetitions).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelinePoint {
    pub visitors: u64,
    pub allocations: Vec<f64>,
    pub conversions: f64,
    pub regret: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StrategyResult {
    pub strategy: StrategyName,
    pub conversions: f64,
    /// Mean over repetitions of Σ (best true rate − chosen arm's true rate).
    pub regret: f64,
    pub regret_se: f64,
    pub allocations: Vec<f64>,
    /// What the floor alone costs: floor × Σ gaps × visitors.
    pub floor_cost: f64,
    /// After a stop, a repetition's points keep its state at the stop.
    pub timeline: Vec<TimelinePoint>,
    pub stopping: StoppingOut,
    /// Mean visitors (over the repetitions that got there) until the truly best arm's
    /// probability of being best first reached 0.95; null when none did.
    pub visitors_to_confidence: Option<f64>,
    /// The share of repetitions in which it got there.
    pub confidence_share: f64,
}

/// What the stop rule did (all zero shares and the horizon under `none`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StoppingOut {
    /// Visitors per repetition until it stopped (the horizon when it did not).
    pub mean_visitors: f64,
    pub stopped_share: f64,
    pub declared_winner_share: f64,
    /// Declarations of the arm with the highest true rate (every declaration is wrong when
    /// all rates are equal).
    pub correct_winner_share: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SimulatedArm {
    pub name: String,
    pub true_rate: f64,
}

/// The answer of POST /simulate (and what `samplit simulate` prints).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Simulation {
    pub arms: Vec<SimulatedArm>,
    pub visitors: u64,
    pub repetitions: u32,
    pub seed: u64,
    pub floor: f64,
    pub update_every: u64,
    /// `none`, `sequential` or `bayesian`.
    pub stop_rule: String,
    pub results: Vec<StrategyResult>,
}

/// Runs the plan (CPU-bound: call from a blocking thread) and renders the answer; `None`
/// when `progress` asked to stop (see `simulator::Progress`).
pub fn execute(plan: &Plan, progress: simulator::Progress<'_>) -> Option<Simulation> {
    let results = plan
        .strategies
        .iter()
        .map(|&s| {
            let r = simulator::simulate(&plan.setup, s, plan.seed, plan.repetitions, progress)?;
            let timeline = r
                .timeline
                .into_iter()
                .map(|p| TimelinePoint {
                    visitors: p.visitors,
                    allocations: p.allocations,
                    conversions: p.conversions,
                    regret: p.regret,
                })
                .collect();
            Some(StrategyResult {
                strategy: s.into(),
                conversions: r.conversions,
                regret: r.regret,
                regret_se: r.regret_se,
                allocations: r.allocations,
                floor_cost: r.floor_cost,
                timeline,
                stopping: StoppingOut {
                    mean_visitors: r.stopping.mean_visitors,
                    stopped_share: r.stopping.stopped_share,
                    declared_winner_share: r.stopping.declared_winner_share,
                    correct_winner_share: r.stopping.correct_winner_share,
                },
                visitors_to_confidence: r.visitors_to_confidence,
                confidence_share: r.confidence_share,
            })
        })
        .collect::<Option<_>>()?;
    Some(Simulation {
        arms: plan
            .names
            .iter()
            .zip(&plan.setup.true_rates)
            .map(|(n, &r)| SimulatedArm { name: n.clone(), true_rate: r })
            .collect(),
        visitors: plan.setup.visitors,
        repetitions: plan.repetitions,
        seed: plan.seed,
        floor: plan.setup.floor,
        update_every: plan.setup.update_every,
        stop_rule: plan.setup.stop_rule.as_str().to_string(),
        results,
    })
}
