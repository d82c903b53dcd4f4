//! Benchmarks for the statistics engine: `summarize` (prob_best and expected
//! loss in one quadrature pass) is what a weight refresh runs, so its cost
//! bounds how often adaptive weights can be refreshed.

use criterion::{Criterion, criterion_group, criterion_main};
use samplit::engine::stats::*;
use std::hint::black_box;

/// `k` arms with 1000 visitors each and conversion rates spread around 5%,
/// as a running experiment looks.
fn realistic_arms(k: u64) -> Vec<BetaPosterior> {
    (0..k).map(|i| BetaPosterior::from_counts(1000, 40 + (i * 7) % 26)).collect()
}

fn bench_prob_best(c: &mut Criterion) {
    for (name, k) in [("prob_best_k2", 2), ("prob_best_k10", 10), ("prob_best_k32", 32)] {
        let arms = realistic_arms(k);
        c.bench_function(name, |b| b.iter(|| summarize(black_box(&arms))));
    }
    let huge = [
        BetaPosterior::from_counts(100_000_000, 5_000_000),
        BetaPosterior::from_counts(100_000_000, 5_001_000),
    ];
    c.bench_function("prob_best_k2_1e8_visitors", |b| b.iter(|| summarize(black_box(&huge))));
    let mixed = [
        BetaPosterior::from_counts(0, 0),
        BetaPosterior::from_counts(10_000, 500),
        BetaPosterior::from_counts(10_000, 520),
    ];
    c.bench_function("prob_best_mixed_fresh_vs_10k", |b| b.iter(|| summarize(black_box(&mixed))));
}

fn bench_other(c: &mut Criterion) {
    let arm = BetaPosterior::from_counts(1000, 70);
    c.bench_function("credible_interval", |b| b.iter(|| black_box(arm).credible_interval(0.95)));
    let observed = [5100u64, 2950, 2050];
    let expected = [5000.5, 3010.25, 2089.25];
    c.bench_function("srm_k3", |b| b.iter(|| srm(black_box(&observed), black_box(&expected))));
}

criterion_group!(benches, bench_prob_best, bench_other);
criterion_main!(benches);
