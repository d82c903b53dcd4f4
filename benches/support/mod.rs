//! What the HTTP benches share: the real binary on a free port over a data dir, and a
//! few calls to set up an owner with a running experiment.
// Each bench uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub base: String,
    stopped: bool,
}

/// Starts `samplit serve` over `dir` with the rate limits off; the time to `/health`.
pub fn start_samplit(dir: &std::path::Path) -> (Server, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_samplit"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("SAMPLIT_LIMITS__TRACKER_PER_IP", "0")
        .env("SAMPLIT_LIMITS__TRACKER_PER_SITE", "0")
        .env("SAMPLIT_LIMITS__API_PER_TOKEN", "0")
        .env("SAMPLIT_LIMITS__LOGIN_PER_IP", "0")
        .env("SAMPLIT_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start samplit");
    let out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut base = String::new();
    for line in out.lines().map_while(Result::ok) {
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = rest.split_whitespace().next().unwrap_or_default().to_string();
            break;
        }
    }
    assert!(!base.is_empty(), "samplit did not say where it listens");
    let agent = agent();
    while agent.get(format!("{base}/health")).call().is_err() {
        std::thread::sleep(Duration::from_millis(5));
    }
    (Server { child, base, stopped: false }, t0.elapsed())
}

impl Server {
    /// SIGTERM, then waits for the clean exit (the data file closed).
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// POSTs JSON; the answer's JSON, panicking with the body on a status other than 2xx.
pub fn post(
    base: &str,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut req = agent().post(format!("{base}{path}")).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut r = req.send(body.to_string()).expect("request");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    assert!((200..300).contains(&status), "POST {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_default()
}

/// An owner with a running two-arm experiment: (token, site key, experiment id).
pub fn setup(base: &str) -> (String, String, String) {
    use serde_json::json;
    let login = json!({"email": "load@example.com", "password": "load test password"});
    post(base, "/api/v1/auth/register", None, login.clone());
    let tok = post(base, "/api/v1/auth/token", None, login)["access_token"]
        .as_str()
        .expect("a token")
        .to_string();
    let mut r = agent()
        .get(format!("{base}/api/v1/auth/me"))
        .header("authorization", format!("Bearer {tok}"))
        .call()
        .expect("GET /auth/me");
    let me: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
            .unwrap_or_default();
    let site = me["site_key"].as_str().expect("a site key").to_string();
    let exp = post(
        base,
        "/api/v1/experiments",
        Some(&tok),
        json!({"name": "load", "selector": "#cta",
        "variants": [{"name": "A", "content": {"text": "a"}}, {"name": "B", "content": {"text": "b"}}]}),
    );
    let id = exp["id"].as_str().expect("an experiment id").to_string();
    post(base, &format!("/api/v1/experiments/{id}/start"), Some(&tok), json!({}));
    (tok, site, id)
}

/// Stores `n` assignments through the batch endpoint, 10,000 visitors a call, with ids
/// shaped like tracker.js's (32 hex digits, see `visitor_id`); the time it took.
pub fn fill(base: &str, tok: &str, site: &str, exp: &str, n: u64) -> Duration {
    let t0 = Instant::now();
    let mut done = 0u64;
    while done < n {
        let take = (n - done).min(10_000);
        let ids: Vec<String> = (done..done + take).map(visitor_id).collect();
        post(
            base,
            "/api/v1/tracker/assign/batch",
            Some(tok),
            serde_json::json!({"site_key": site, "experiment_id": exp, "user_ids": ids}),
        );
        done += take;
    }
    t0.elapsed()
}

/// The `i`th visitor's id: 32 hex digits as tracker.js makes them, spread like random ones.
pub fn visitor_id(i: u64) -> String {
    let x = (i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    format!("{:032x}", x ^ (x >> 61))
}
