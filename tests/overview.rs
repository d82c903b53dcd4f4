//! GET /overview against the analytics endpoints: experiments in every status with known
//! traffic, and the overview's counts, windows, leaders and adaptive gain must agree with
//! what each experiment's own results say.

mod common;

use common::{TestApp, ab_body};
use serde_json::{Value, json};

/// Creates an experiment with `allocation`, starts it, sends `visitors` visitors and
/// converts some (every 2nd on B, every 5th on the control): the arms differ.
fn with_traffic(app: &TestApp, t: &str, site: &str, name: &str, alloc: &str, n: usize) -> String {
    let mut body = ab_body(name);
    body["allocation"] = json!(alloc);
    let exp = app.running_ab(t, body);
    let id = exp["id"].as_str().unwrap().to_string();
    for u in 0..n {
        let user = format!("{name}-{u}");
        let a = app.assign(site, &id, &user);
        assert_eq!(a.status, 200, "{}", a.text);
        let on_b = a.body["variants"][0]["variant_name"] == "B";
        if (on_b && u % 2 == 0) || (!on_b && u % 5 == 0) {
            assert_eq!(app.convert(site, &id, &user).body["recorded"], true);
        }
    }
    id
}

fn overview(app: &TestApp, t: &str) -> Value {
    let r = app.get("/api/v1/overview", Some(t));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn the_overview_agrees_with_each_experiments_results() {
    let app = TestApp::spawn();
    let t = app.register("owner@example.com");
    let site = app.site_key(&t);

    // An empty account: zeros, not errors.
    let o = overview(&app, &t);
    assert_eq!(o["experiments"], json!({"draft": 0, "running": 0, "paused": 0, "completed": 0}));
    assert_eq!(o["visitors"], json!({"today": 0, "last_7_days": 0, "last_30_days": 0}));
    assert_eq!(f(&o["extra_conversions"]), 0.0);
    assert_eq!(o["leaders"], json!([]));
    assert_eq!(o["days"].as_array().unwrap().len(), 30);

    let draft = app.post("/api/v1/experiments", Some(&t), &ab_body("draft"));
    assert_eq!(draft.status, 201);
    let running = with_traffic(&app, &t, &site, "running", "adaptive", 60);
    let paused = with_traffic(&app, &t, &site, "paused", "fixed", 25);
    let r = app.post(&format!("/api/v1/experiments/{paused}/pause"), Some(&t), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let completed = with_traffic(&app, &t, &site, "completed", "adaptive", 30);
    let r = app.post(&format!("/api/v1/experiments/{completed}/complete"), Some(&t), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    // Archived experiments are left out, as in the list.
    let archived = with_traffic(&app, &t, &site, "archived", "adaptive", 10);
    assert_eq!(app.delete(&format!("/api/v1/experiments/{archived}"), Some(&t)).status, 204);
    // Another owner's traffic never shows.
    let other = app.post(
        "/api/v1/users",
        Some(&t),
        &json!({"email": "other@example.com", "password": "other pass", "role": "member"}),
    );
    assert_eq!(other.status, 201, "{}", other.text);
    let t2 = app.login("other@example.com", "other pass");
    let site2 = app.site_key(&t2);
    let theirs = with_traffic(&app, &t2, &site2, "theirs", "adaptive", 15);

    let o = overview(&app, &t);
    assert_eq!(o["experiments"], json!({"draft": 1, "running": 1, "paused": 1, "completed": 1}));
    let today = &o["generated_at"].as_str().unwrap()[..10];

    let (mut visitors, mut conversions, mut visitors_today, mut conversions_today) = (0, 0, 0, 0);
    let mut extra = 0.0;
    for id in [&running, &paused, &completed] {
        let a = app.get(&format!("/api/v1/analytics/experiments/{id}"), Some(&t));
        assert_eq!(a.status, 200, "{}", a.text);
        let a = a.body;
        visitors += u(&a["visitors"]);
        conversions += u(&a["conversions"]);
        let series =
            app.get(&format!("/api/v1/analytics/experiments/{id}/timeseries?bucket=day"), Some(&t));
        for b in series.body["buckets"].as_array().unwrap() {
            if b["start"].as_str().unwrap().starts_with(today) {
                for arm in b["arms"].as_array().unwrap() {
                    visitors_today += u(&arm["allocations"]);
                    conversions_today += u(&arm["conversions"]);
                }
            }
        }
        let arms = a["arms"].as_array().unwrap();
        if a["allocation"] == "adaptive" {
            // Σ_k ipw_k / K, with each arm's ipw_k = adjusted rate × visitors.
            let n = f(&a["visitors"]);
            let equal: f64 =
                arms.iter().map(|x| f(&x["adjusted_conversion_rate"]) * n).sum::<f64>()
                    / arms.len() as f64;
            let gain = f(&a["conversions"]) - equal;
            extra += gain;
            let listed = o["adaptive"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["experiment_id"] == a["experiment_id"])
                .unwrap_or_else(|| panic!("{id} missing from adaptive: {o}"));
            assert!((f(&listed["extra_conversions"]) - gain).abs() < 1e-6, "{listed} vs {gain}");
            assert!((f(&listed["equal_split_conversions"]) - equal).abs() < 1e-6);
        }
        if a["status"] == "running" || a["status"] == "paused" {
            let best = arms
                .iter()
                .max_by(|x, y| f(&x["prob_best"]).total_cmp(&f(&y["prob_best"])))
                .unwrap();
            let leader = o["leaders"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["experiment_id"] == a["experiment_id"])
                .unwrap_or_else(|| panic!("{id} has no leader: {o}"));
            assert_eq!(leader["arm_id"], best["arm_id"]);
            assert_eq!(leader["arm_name"], best["name"]);
            assert_eq!(leader["status"], a["status"]);
            assert_eq!(leader["visitors"], a["visitors"]);
            assert!((f(&leader["prob_best"]) - f(&best["prob_best"])).abs() < 1e-9);
            assert!((f(&leader["conversion_rate"]) - f(&best["conversion_rate"])).abs() < 1e-12);
        }
    }
    assert_eq!(visitors, 60 + 25 + 30);
    assert_eq!(u(&o["visitors"]["last_7_days"]), visitors);
    assert_eq!(u(&o["visitors"]["last_30_days"]), visitors);
    assert_eq!(u(&o["conversions"]["last_7_days"]), conversions);
    assert_eq!(u(&o["conversions"]["last_30_days"]), conversions);
    // "Today" is the UTC day of `generated_at`, the same day as the day buckets.
    assert_eq!(u(&o["visitors"]["today"]), visitors_today);
    assert_eq!(u(&o["conversions"]["today"]), conversions_today);
    assert!(
        (f(&o["extra_conversions"]) - extra).abs() < 1e-6,
        "{} vs {extra}",
        o["extra_conversions"]
    );
    assert_eq!(o["adaptive"].as_array().unwrap().len(), 2, "running and completed: {o}");
    // Leaders: the running and the paused experiment only (completed is over).
    let leaders = o["leaders"].as_array().unwrap();
    assert_eq!(leaders.len(), 2, "{o}");
    assert!(leaders.iter().all(|l| l["name"] == "running" || l["name"] == "paused"));

    let days = o["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days[29]["date"], today);
    assert_eq!(days[29]["visitors"], o["visitors"]["today"]);
    let month: u64 = days.iter().map(|d| u(&d["visitors"])).sum();
    assert_eq!(month, visitors);
    let week: u64 = days[23..].iter().map(|d| u(&d["conversions"])).sum();
    assert_eq!(week, conversions);

    // The other owner sees only their own experiment.
    let o2 = overview(&app, &t2);
    assert_eq!(o2["experiments"], json!({"draft": 0, "running": 1, "paused": 0, "completed": 0}));
    assert_eq!(u(&o2["visitors"]["last_30_days"]), 15);
    let l2 = o2["leaders"].as_array().unwrap();
    assert_eq!(l2.len(), 1);
    assert_eq!(l2[0]["experiment_id"], json!(theirs));

    assert_eq!(app.get("/api/v1/overview", None).status, 401);
}
