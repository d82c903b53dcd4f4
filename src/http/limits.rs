//! Token-bucket rate limits keyed by client IP, site key or token. A limit of 0 disables
//! its bucket; bursts of twice the rate are allowed.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::LimitsConfig;
use crate::error::{AppError, Code};

pub struct Limiter {
    /// Tokens added per second.
    rate: f64,
    burst: f64,
    per: &'static str,
    /// Sharded by key so tracker requests on different cores rarely wait on one lock.
    shards: Vec<Mutex<HashMap<String, (f64, Instant)>>>,
    hasher: RandomState,
}

const SHARDS: usize = 16;
/// Above this many keys in a shard, idle buckets are dropped (a full bucket is the same as
/// none).
const MAX_KEYS: usize = 100_000 / SHARDS;

impl Limiter {
    pub fn per_second(rate: u32, per: &'static str) -> Limiter {
        Limiter::new(f64::from(rate), f64::from(rate) * 2.0, per)
    }

    pub fn per_minute(rate: u32, per: &'static str) -> Limiter {
        Limiter::new(f64::from(rate) / 60.0, f64::from(rate), per)
    }

    fn new(rate: f64, burst: f64, per: &'static str) -> Limiter {
        Limiter {
            rate,
            burst,
            per,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Checks `key()`, which is only built when the limit is on.
    pub fn check_lazy(&self, key: impl FnOnce() -> String) -> Result<(), AppError> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        self.check(&key())
    }

    pub fn check(&self, key: &str) -> Result<(), AppError> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let shard = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A poisoned shard still holds valid buckets; skipping it would turn the limit off.
        let mut m = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > MAX_KEYS {
            let (rate, burst) = (self.rate, self.burst);
            m.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        // A known key (the usual case) costs no allocation.
        if !m.contains_key(key) {
            m.insert(key.to_string(), (self.burst, now));
        }
        let Some((tokens, at)) = m.get_mut(key) else { return Ok(()) };
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64;
        Err(AppError::new(
            Code::RateLimited,
            format!("too many requests per {}; retry later", self.per),
        )
        .with_details(serde_json::json!({"retry_after": wait})))
    }
}

pub struct Limits {
    pub tracker_ip: Limiter,
    pub tracker_site: Limiter,
    pub api: Limiter,
    pub login: Limiter,
    pub simulate: Limiter,
}

impl Limits {
    pub fn new(c: &LimitsConfig) -> Limits {
        Limits {
            tracker_ip: Limiter::per_second(c.tracker_per_ip, "client IP"),
            tracker_site: Limiter::per_second(c.tracker_per_site, "site key"),
            api: Limiter::per_second(c.api_per_token, "token"),
            login: Limiter::per_minute(c.login_per_ip, "client IP"),
            simulate: Limiter::per_minute(c.simulate_per_ip, "client IP"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refuses() {
        let l = Limiter::per_second(5, "x");
        for _ in 0..10 {
            l.check("a").unwrap();
        }
        let e = l.check("a").unwrap_err();
        assert_eq!(e.code, Code::RateLimited);
        l.check("b").unwrap();
        let off = Limiter::per_second(0, "x");
        for _ in 0..1000 {
            off.check("a").unwrap();
        }
    }
}
