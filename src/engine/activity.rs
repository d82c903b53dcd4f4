//! Traffic over calendar days: hourly counters summed into today, the last 7 and the last
//! 30 days (UTC, today included), and one row per day for the overview's chart.
//!
//! Calendar days rather than rolling 24-hour windows, so "today" means the same as the
//! day buckets of `GET /analytics/experiments/{id}/timeseries?bucket=day`.

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// The longest window, and the length of the per-day series.
pub const DAYS: usize = 30;

/// A count over the three windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Windows {
    pub today: u64,
    pub last_7_days: u64,
    pub last_30_days: u64,
}

/// Visitors and conversions per day of the last [`DAYS`] days, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// The first day of the series, in days since the Unix epoch.
    first_day: i64,
    /// `(visitors, conversions)` per day.
    days: Vec<(u64, u64)>,
}

impl Activity {
    /// An empty series ending with the UTC day of `now_ms`.
    pub fn new(now_ms: i64) -> Activity {
        let today = now_ms.div_euclid(DAY_MS);
        Activity { first_day: today - (DAYS as i64 - 1), days: vec![(0, 0); DAYS] }
    }

    /// The first hour (since the epoch) that can fall in the series: where to start reading.
    pub fn first_hour(&self) -> i64 {
        self.first_day * (DAY_MS / HOUR_MS)
    }

    /// Adds one hourly counter. Hours before the series are ignored; hours after today
    /// (a clock that stepped back) count as today, so no recorded traffic goes missing.
    pub fn add(&mut self, hour: i64, visitors: u64, conversions: u64) {
        let day = hour.div_euclid(DAY_MS / HOUR_MS) - self.first_day;
        let Ok(i) = usize::try_from(day) else { return };
        let slot = &mut self.days[i.min(DAYS - 1)];
        slot.0 = slot.0.saturating_add(visitors);
        slot.1 = slot.1.saturating_add(conversions);
    }

    /// Each day's start (ms since the epoch) with its `(visitors, conversions)`.
    pub fn days(&self) -> impl Iterator<Item = (i64, u64, u64)> + '_ {
        self.days
            .iter()
            .enumerate()
            .map(|(i, &(v, c))| ((self.first_day + i as i64) * DAY_MS, v, c))
    }

    pub fn visitors(&self) -> Windows {
        self.windows(|d| d.0)
    }

    pub fn conversions(&self) -> Windows {
        self.windows(|d| d.1)
    }

    fn windows(&self, pick: impl Fn(&(u64, u64)) -> u64) -> Windows {
        let sum =
            |n: usize| self.days[DAYS - n..].iter().map(&pick).fold(0u64, u64::saturating_add);
        Windows { today: sum(1), last_7_days: sum(7), last_30_days: sum(DAYS) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = DAY_MS / HOUR_MS;

    #[test]
    fn hours_fall_into_their_calendar_days() {
        // Noon on day 100 since the epoch.
        let now = 100 * DAY_MS + 12 * HOUR_MS;
        let mut a = Activity::new(now);
        assert_eq!(a.first_hour(), 71 * H);
        a.add(100 * H, 1, 0); // midnight today
        a.add(100 * H + 11, 2, 1); // this morning
        a.add(100 * H - 1, 4, 2); // 23:00 yesterday
        a.add(94 * H, 8, 3); // six days ago: inside the week
        a.add(93 * H + 23, 16, 4); // seven days ago: outside the week
        a.add(71 * H, 32, 5); // the first day of the month
        a.add(71 * H - 1, 64, 6); // before it: ignored
        assert_eq!(a.visitors(), Windows { today: 3, last_7_days: 15, last_30_days: 63 });
        assert_eq!(a.conversions(), Windows { today: 1, last_7_days: 6, last_30_days: 15 });
        let days: Vec<_> = a.days().collect();
        assert_eq!(days.len(), DAYS);
        assert_eq!(days[0], (71 * DAY_MS, 32, 5));
        assert_eq!(days[DAYS - 1], (100 * DAY_MS, 3, 1));
    }

    #[test]
    fn a_future_hour_counts_as_today_and_sums_saturate() {
        let mut a = Activity::new(5 * DAY_MS);
        a.add(9 * H, u64::MAX, 1);
        a.add(5 * H, 1, 1);
        assert_eq!(a.visitors().today, u64::MAX);
        assert_eq!(a.conversions().last_30_days, 2);
    }

    #[test]
    fn days_before_the_epoch_are_handled() {
        let mut a = Activity::new(-1);
        a.add(-1, 1, 0);
        assert_eq!(a.visitors().today, 1);
        assert_eq!(a.days().last().map(|d| d.0), Some(-DAY_MS));
    }
}
