//! The hot path's pure parts: one adaptive decision (published weights lookup + hash +
//! bucket), a weight refresh (exact prob_best + floor), and the analytics of an experiment.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use samplit::engine::allocator::{self, ArmCounts};
use samplit::engine::crypto::StateKey;
use samplit::store::Store;
use samplit::store::writer::{ExpMeta, Writer, WriterOptions};

fn counts(k: usize) -> Vec<ArmCounts> {
    (0..k).map(|i| ArmCounts { allocations: 10_000, conversions: 500 + 7 * i as u64 }).collect()
}

fn decision(c: &mut Criterion) {
    // The real published-snapshot path: a writer over a temp store with one experiment.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (writer, _h) = Writer::start(
        store,
        StateKey::new(&[3u8; 32]),
        Default::default(),
        Default::default(),
        WriterOptions {
            max_batch: 1024,
            max_queue: 100_000,
            refresh_interval: std::time::Duration::from_millis(100),
            min_weight_change: samplit::engine::allocator::MIN_WEIGHT_CHANGE,
        },
    );
    let exp = uuid::Uuid::new_v4();
    let k = 10;
    let meta = ExpMeta {
        owner: uuid::Uuid::nil(),
        arms: k,
        adaptive: true,
        policy: samplit::engine::allocator::Policy::Thompson,
        floor: 0.01,
        burn_in: 0,
        initial_weights: vec![0.1; k],
    };
    rt.block_on(writer.register(exp, meta)).unwrap();
    let live = writer.live().clone();
    let seed = exp.to_string();
    let users: Vec<String> = (0..1024).map(|i| format!("visitor-{i:08}")).collect();
    let mut i = 0;
    c.bench_function("adaptive_decision_10_arms", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let snap = live.get(black_box(exp)).unwrap();
            black_box(allocator::decide(&seed, &users[i], &snap.weights.w, 1.0))
        })
    });
    drop(writer);
}

fn refresh(c: &mut Criterion) {
    for k in [2usize, 10] {
        let cs = counts(k);
        c.bench_function(&format!("weight_refresh_{k}_arms"), |b| {
            b.iter(|| black_box(allocator::adaptive_weights(black_box(&cs), 0.01, 0)))
        });
    }
}

criterion_group!(benches, decision, refresh);
criterion_main!(benches);
