//! The HTTP hot path under load, against a plain hyper JSON endpoint measured in the same
//! run on the same machine. Needs `wrk` (Debian package). Run: `cargo bench --bench load`.
//!
//! Scenarios (64 connections, 2 wrk threads, 10 s each by default; LOAD_SECONDS overrides),
//! run in LOAD_ROUNDS rounds (default 3), the median ratio reported:
//! - plain:  a hyper server answering a fixed JSON body, the ceiling;
//! - sticky: POST /tracker/assign for visitors already assigned (read path);
//! - new:    POST /tracker/assign for a new visitor every request (durable group commit).
//!
//! Then the scale check: 1,000,000 stored assignments, the analytics latency, the server's
//! RSS, and the start-up time over that data.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{agent, post, setup, start_samplit};

const BODY: &str = r#"{"experiment_id":"00000000-0000-0000-0000-000000000000","assignment_id":"00000000-0000-0000-0000-000000000000","new":false,"variants":[{"element_id":"x","variant_name":"B","content":{"text":"Get yours"}}]}"#;

fn plain_hyper() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(async move {
                    let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                                .unwrap(),
                        )
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    format!("http://{addr}")
}

struct Wrk {
    rps: f64,
    p99_ms: f64,
    errors: String,
}

fn wrk(url: &str, lua: &str, seconds: u64) -> Wrk {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.lua");
    std::fs::File::create(&script).unwrap().write_all(lua.as_bytes()).unwrap();
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(url)
        .output()
        .expect("wrk is required: apt-get install wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(to_ms)
        .unwrap_or(f64::NAN);
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .collect::<Vec<_>>()
        .join("; ");
    Wrk { rps, p99_ms: p99, errors }
}

fn to_ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => n,
    }
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("the load bench needs wrk: apt-get install wrk");
        std::process::exit(1);
    }
    let seconds: u64 =
        std::env::var("LOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let plain = plain_hyper();
    let (server, _) = start_samplit(dir.path());
    let (tok, site, id) = setup(&server.base);

    // Sticky: 1,000 visitors assigned up front, then cycled.
    let users: Vec<String> = (0..1000).map(|i| format!("sticky-{i}")).collect();
    post(
        &server.base,
        "/api/v1/tracker/assign/batch",
        Some(&tok),
        serde_json::json!({"site_key": site, "experiment_id": id, "user_ids": users}),
    );
    let sticky_lua = format!(
        "local i = 0\nrequest = function()\n  i = (i + 1) % 1000\n  return wrk.format('POST', '/api/v1/tracker/assign', {{['Content-Type'] = 'application/json'}}, '{{\"site_key\":\"{site}\",\"experiment_id\":\"{id}\",\"user_id\":\"sticky-' .. i .. '\"}}')\nend\n"
    );
    let new_lua = format!(
        "local i = 0\nlocal t = tostring(math.random(1, 1000000000))\nrequest = function()\n  i = i + 1\n  return wrk.format('POST', '/api/v1/tracker/assign', {{['Content-Type'] = 'application/json'}}, '{{\"site_key\":\"{site}\",\"experiment_id\":\"{id}\",\"user_id\":\"new-' .. t .. '-' .. i .. '\"}}')\nend\n"
    );
    let plain_lua = "request = function()\n  return wrk.format('POST', '/', {['Content-Type'] = 'application/json'}, '{}')\nend\n";

    // The machine is shared with wrk and its speed drifts: rounds of plain, sticky, new,
    // each ratio taken within its round, and the median ratio reported.
    let rounds: usize =
        std::env::var("LOAD_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    println!(
        "load: 64 connections, 2 wrk threads, {seconds} s per scenario, {rounds} rounds, on this machine ({} cores)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "{:<7} {:>10} {:>10} {:>10} {:>8} {:>8} {:>9}",
        "round", "plain/s", "sticky/s", "new/s", "sticky", "new", "new p99"
    );
    let (mut sticky_ratios, mut new_ratios, mut p99s) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let p = wrk(&plain, plain_lua, seconds);
        let s = wrk(&format!("{}/api/v1/tracker/assign", server.base), &sticky_lua, seconds);
        let n = wrk(&format!("{}/api/v1/tracker/assign", server.base), &new_lua, seconds);
        println!(
            "{round:<7} {:>10.0} {:>10.0} {:>10.0} {:>8.2} {:>8.2} {:>7.2}ms",
            p.rps,
            s.rps,
            n.rps,
            s.rps / p.rps,
            n.rps / p.rps,
            n.p99_ms
        );
        for (name, w) in [("plain", &p), ("sticky", &s), ("new", &n)] {
            if !w.errors.is_empty() {
                println!("  {name}: {}", w.errors);
            }
        }
        sticky_ratios.push(s.rps / p.rps);
        new_ratios.push(n.rps / p.rps);
        p99s.push(n.p99_ms);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median  sticky {:.2} of plain hyper, new {:.2}, new p99 {:.2} ms",
        median(sticky_ratios),
        median(new_ratios),
        median(p99s)
    );
    println!("goals: sticky >= 0.70, new >= 0.35 (aim 0.5), new p99 <= 10 ms");

    // Scale: fill to 1,000,000 stored assignments with batch calls.
    if std::env::var("LOAD_SKIP_SCALE").is_ok() {
        return;
    }
    let fill = support::fill(&server.base, &tok, &site, &id, 1_000_000);
    let a = agent();
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let mut r = a
            .get(format!("{}/api/v1/analytics/experiments/{id}", server.base))
            .header("authorization", format!("Bearer {tok}"))
            .call()
            .unwrap();
        let _ = r.body_mut().read_to_string();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let rss_running = rss_mb(server.child.id());
    drop(server);
    let size = std::fs::metadata(dir.path().join("samplit.redb")).map(|m| m.len()).unwrap_or(0);
    let (server, startup) = start_samplit(dir.path());
    // Touch the experiment once so the RSS includes a warm read path.
    let mut r = a
        .get(format!("{}/api/v1/analytics/experiments/{id}", server.base))
        .header("authorization", format!("Bearer {tok}"))
        .call()
        .unwrap();
    let _ = r.body_mut().read_to_string();
    let rss_restarted = rss_mb(server.child.id());
    println!(
        "scale: 1,000,000 assignments stored in {:.1} s (batch endpoint), data file {:.0} MB",
        fill.as_secs_f64(),
        size as f64 / 1e6
    );
    println!(
        "scale: analytics median {:.2} ms, max {:.2} ms (goal < 10 ms)",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    println!(
        "scale: RSS {:.0} MB after filling, {:.0} MB after restart (goal < 150 MB)",
        rss_running, rss_restarted
    );
    println!(
        "scale: start-up to healthy over that data {:.0} ms (goal < 1000 ms)",
        startup.as_secs_f64() * 1000.0
    );
}
