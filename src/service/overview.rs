//! GET /overview: the owner's home page in one answer. Experiments by status, traffic over
//! calendar days, the current leaders and what adaptive allocation won over an equal split,
//! all from the live counters and the hourly counters (never a scan of the records).
//! Archived experiments are left out, as in the experiment list.

use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::Principal;
use super::catalog::{Catalog, Entry};
use super::{now_ms, rfc3339};
use crate::engine::activity::{self, Activity};
use crate::engine::model::{Allocation, Status};
use crate::engine::{counting, stats, uplift};
use crate::error::AppResult;
use crate::store::Store;
use crate::store::api::RecordStore;
use crate::store::writer::Writer;

/// Above this many arms the leader is not computed (as in the experiment list).
const LEADER_MAX_ARMS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct StatusCounts {
    pub draft: u64,
    pub running: u64,
    pub paused: u64,
    pub completed: u64,
}

/// A count over today, the last 7 and the last 30 UTC calendar days (today included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct WindowCounts {
    pub today: u64,
    pub last_7_days: u64,
    pub last_30_days: u64,
}

impl From<activity::Windows> for WindowCounts {
    fn from(w: activity::Windows) -> WindowCounts {
        WindowCounts { today: w.today, last_7_days: w.last_7_days, last_30_days: w.last_30_days }
    }
}

/// The arm most likely to be best in a running or paused experiment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OverviewLeader {
    pub experiment_id: Uuid,
    /// The experiment's name.
    pub name: String,
    pub status: Status,
    pub arm_id: String,
    pub arm_name: String,
    pub prob_best: f64,
    /// The experiment's visitors, every arm together.
    pub visitors: u64,
    /// The leading arm's observed conversion rate.
    pub conversion_rate: f64,
}

/// One adaptive experiment's share of `extra_conversions`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AdaptiveGain {
    pub experiment_id: Uuid,
    pub name: String,
    pub status: Status,
    pub conversions: u64,
    /// The inverse-propensity estimate of an equal split's conversions.
    pub equal_split_conversions: f64,
    pub extra_conversions: f64,
}

/// One UTC day of the per-day series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OverviewDay {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub visitors: u64,
    pub conversions: u64,
}

/// GET /overview.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Overview {
    pub generated_at: String,
    /// The caller's experiments by status (archived ones left out).
    pub experiments: StatusCounts,
    /// New visitors (assignments inside the traffic share) by the day they were assigned.
    pub visitors: WindowCounts,
    /// Primary-goal conversions by the day they happened.
    pub conversions: WindowCounts,
    /// Conversions observed in the caller's adaptive experiments minus the estimated
    /// conversions of an equal split: for K arms, Σ over arms of (Σ over that arm's
    /// conversions of 1/propensity) / K.
    pub extra_conversions: f64,
    /// Each adaptive experiment with visitors, largest gain first.
    pub adaptive: Vec<AdaptiveGain>,
    /// The leading arm of each running or paused experiment with visitors, most certain
    /// first.
    pub leaders: Vec<OverviewLeader>,
    /// The last 30 UTC days, oldest first (the chart's series).
    pub days: Vec<OverviewDay>,
}

/// The owner's overview, from the catalog, the live counters and the hourly counters.
#[derive(Clone)]
pub struct Overviews {
    store: Store,
    writer: Writer,
    catalog: Arc<Catalog>,
}

impl Overviews {
    pub fn new(store: Store, writer: Writer, catalog: Arc<Catalog>) -> Overviews {
        Overviews { store, writer, catalog }
    }

    /// Reads one hourly range per experiment: call from a blocking thread.
    pub fn overview(&self, who: &Principal) -> AppResult<Overview> {
        let now = now_ms();
        let mut counts = StatusCounts::default();
        let mut traffic = Activity::new(now);
        let mut adaptive = Vec::new();
        let mut leaders = Vec::new();
        let entries: Vec<Arc<Entry>> =
            self.catalog.owned_by(who.id()).into_iter().filter(|e| e.visible()).collect();
        for e in &entries {
            let exp = &e.exp;
            match exp.status {
                Status::Draft => counts.draft += 1,
                Status::Running => counts.running += 1,
                Status::Paused => counts.paused += 1,
                Status::Completed => counts.completed += 1,
            }
            if exp.status == Status::Draft {
                continue;
            }
            for (hour, _arm, visitors, conversions) in
                self.store.timeseries_since(exp.id, traffic.first_hour())?
            {
                traffic.add(hour, visitors, conversions);
            }
            let Some(snap) = self.writer.live().get(exp.id) else { continue };
            let state = &snap.state;
            if state.visitors() == 0 {
                continue;
            }
            if exp.allocation == Allocation::Adaptive {
                adaptive.push(AdaptiveGain {
                    experiment_id: exp.id,
                    name: exp.name.clone(),
                    status: exp.status,
                    conversions: state.conversions(),
                    equal_split_conversions: uplift::equal_split_conversions(&state.arms),
                    extra_conversions: uplift::extra_conversions(&state.arms),
                });
            }
            let live = matches!(exp.status, Status::Running | Status::Paused);
            if live && state.arms.len() <= LEADER_MAX_ARMS && state.arms.len() == exp.arm_count() {
                let posts: Vec<_> = state.arms.iter().map(counting::posterior_of).collect();
                let pb = stats::prob_best(&posts);
                if let Some((i, p)) = pb.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
                    let arm = exp.arm(i);
                    let a = &state.arms[i];
                    leaders.push(OverviewLeader {
                        experiment_id: exp.id,
                        name: exp.name.clone(),
                        status: exp.status,
                        arm_id: arm.id,
                        arm_name: arm.name,
                        prob_best: *p,
                        visitors: state.visitors(),
                        conversion_rate: crate::engine::decision::rate(
                            a.allocations,
                            a.conversions,
                        ),
                    });
                }
            }
        }
        adaptive.sort_by(|a, b| b.extra_conversions.total_cmp(&a.extra_conversions));
        leaders.sort_by(|a, b| b.prob_best.total_cmp(&a.prob_best).then(a.name.cmp(&b.name)));
        let extra_conversions = adaptive.iter().map(|g| g.extra_conversions).sum();
        let days = traffic
            .days()
            .map(|(start, visitors, conversions)| OverviewDay {
                date: rfc3339(start).get(..10).unwrap_or_default().to_string(),
                visitors,
                conversions,
            })
            .collect();
        Ok(Overview {
            generated_at: rfc3339(now),
            experiments: counts,
            visitors: traffic.visitors().into(),
            conversions: traffic.conversions().into(),
            extra_conversions,
            adaptive,
            leaders,
            days,
        })
    }
}
