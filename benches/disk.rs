//! Disk use of the real write path: `DISK_ASSIGNMENTS` (default 1,000,000) visitors stored
//! through the batch endpoint, 2% of them converting, then where the file's bytes go (per
//! table: entries, stored bytes, B-tree metadata, unused space in pages, and the pages no
//! table uses), before and after `samplit compact`, and the start-up time over that data
//! (every open runs redb's integrity check). Run: `cargo bench --bench disk`.

mod support;

use std::time::{Duration, Instant};

use samplit::store::Store;
use samplit::store::usage::Usage;
use support::{post, setup, start_samplit, visitor_id};

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let n: u64 =
        std::env::var("DISK_ASSIGNMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let conversions = n / 50;
    let dir = tempfile::tempdir().expect("a temp dir");

    let (server, _) = start_samplit(dir.path());
    let (tok, site, exp) = setup(&server.base);
    let fill = support::fill(&server.base, &tok, &site, &exp, n);
    let t0 = Instant::now();
    for i in (0..n).step_by(50).take(conversions as usize) {
        post(
            &server.base,
            "/api/v1/tracker/convert",
            None,
            serde_json::json!({"site_key": site, "experiment_id": exp, "user_id": visitor_id(i)}),
        );
    }
    let converting = t0.elapsed();
    server.stop();
    println!(
        "disk: {n} assignments in {:.1} s (batch endpoint), {conversions} conversions in {:.1} s (one request each)",
        fill.as_secs_f64(),
        converting.as_secs_f64()
    );

    let (before, open_ms) = usage(dir.path());
    report("as written", &before, n, conversions);
    println!("disk: opening the store (with its integrity check) took {open_ms:.0} ms");

    let t0 = Instant::now();
    let (from, to) = Store::compact(dir.path()).expect("compact");
    println!(
        "disk: samplit compact {:.1} MB -> {:.1} MB in {:.1} s",
        from as f64 / 1e6,
        to as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    let (after, _) = usage(dir.path());
    report("after compact", &after, n, conversions);

    let mut startups: Vec<Duration> = (0..3)
        .map(|_| {
            let (server, took) = start_samplit(dir.path());
            server.stop();
            took
        })
        .collect();
    startups.sort();
    println!(
        "disk: start-up to healthy over that data: median {:.0} ms of 3 (goal < 1000 ms)",
        startups[1].as_secs_f64() * 1000.0
    );
}

fn usage(dir: &std::path::Path) -> (Usage, f64) {
    let t0 = Instant::now();
    let store = Store::open(dir).expect("open the store");
    let open_ms = t0.elapsed().as_secs_f64() * 1000.0;
    (store.usage().expect("usage"), open_ms)
}

fn report(when: &str, u: &Usage, assignments: u64, conversions: u64) {
    println!(
        "disk ({when}): file {:.1} MB, {:.1} MB outside tables (free pages, redb's own trees)",
        u.file_bytes as f64 / 1e6,
        u.outside_tables() as f64 / 1e6
    );
    println!(
        "  {:<20} {:>9} {:>11} {:>11} {:>11} {:>9}",
        "table", "entries", "stored B", "metadata B", "unused B", "B/entry"
    );
    for t in u.tables.iter().filter(|t| t.entries > 0) {
        println!(
            "  {:<20} {:>9} {:>11} {:>11} {:>11} {:>9.1}",
            t.table,
            t.entries,
            t.stored_bytes,
            t.metadata_bytes,
            t.fragmented_bytes,
            t.total_bytes() as f64 / t.entries as f64
        );
    }
    let a = u.table("assignments").map(|t| t.total_bytes()).unwrap_or(0);
    let c = u.table("conversions").map(|t| t.total_bytes()).unwrap_or(0);
    println!(
        "disk ({when}): {:.1} B per assignment in its table, {:.1} B per conversion, {:.1} B of file per assignment",
        a as f64 / assignments.max(1) as f64,
        c as f64 / conversions.max(1) as f64,
        u.file_bytes as f64 / assignments.max(1) as f64
    );
}
