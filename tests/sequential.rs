//! Decisions that stay valid under peeking, through the real server: the `sequential` block
//! of the analytics, and `engine.decision_rule` choosing what `recommendation` follows.

mod common;

use common::{TestApp, ab_body};
use serde_json::{Value, json};
use std::collections::HashMap;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn pair(v: &Value) -> (f64, f64) {
    let a = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    assert_eq!(a.len(), 2, "{v}");
    (f(&a[0]), f(&a[1]))
}

/// A fixed 50/50 experiment fed `visitors` users, the j-th visitor of Control converting
/// when j % `control_every` == 0 and of B when j % `b_every` == 0. Bucketing depends only
/// on the seed and the user ids, so two servers fed alike hold the same counts.
/// Answers (experiment id, B's arm id, Control's arm id).
fn feed(
    app: &TestApp,
    t: &str,
    name: &str,
    visitors: usize,
    control_every: usize,
    b_every: usize,
) -> (String, String, String) {
    let sk = app.site_key(t);
    let mut body = ab_body(name);
    body["allocation"] = json!("fixed");
    body["seed"] = json!(format!("sequential-{name}"));
    let exp = app.running_ab(t, body);
    let id = s(&exp["id"]).to_string();
    let control = s(&exp["elements"][0]["variants"][0]["id"]).to_string();
    let b = s(&exp["elements"][0]["variants"][1]["id"]).to_string();
    let users: Vec<String> = (0..visitors).map(|i| format!("{name}-{i}")).collect();
    let r = app.post(
        "/api/v1/tracker/assign/batch",
        Some(t),
        &json!({"site_key": sk, "experiment_id": id, "user_ids": users}),
    );
    assert_eq!(r.status, 200, "batch assign: {}", r.text);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in r.body["assignments"].as_array().unwrap() {
        let arm = s(&item["variants"][0]["variant_name"]).to_string();
        let j = seen.entry(arm.clone()).or_default();
        let every = if arm == "B" { b_every } else { control_every };
        if j.is_multiple_of(every) {
            let c = app.convert(&sk, &id, s(&item["user_id"]));
            assert_eq!(c.body["recorded"], true, "{}", c.text);
        }
        *j += 1;
    }
    (id, b, control)
}

fn analytics(app: &TestApp, t: &str, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/analytics/experiments/{id}"), Some(t));
    assert_eq!(r.status, 200, "analytics: {}", r.text);
    r.body
}

/// The block's numbers hang together: every observed rate inside its arm's sequence, each
/// effect the difference of the two sequences with the observed difference inside, and
/// each sequence wider than the 95% credible interval (it holds at every look).
fn check_sane(a: &Value, control: &str) {
    let seq = &a["sequential"];
    assert_eq!(f(&seq["alpha"]), 0.05, "{seq}");
    let mut cs = HashMap::new();
    for arm in a["arms"].as_array().unwrap() {
        let id = s(&arm["arm_id"]).to_string();
        let row = seq["arms"].as_array().unwrap().iter().find(|x| x["arm_id"] == id.as_str());
        let (lo, hi) =
            pair(&row.unwrap_or_else(|| panic!("no {id} in {seq}"))["confidence_sequence"]);
        let rate = f(&arm["conversion_rate"]);
        assert!((0.0..=1.0).contains(&lo) && lo <= rate && rate <= hi && hi <= 1.0, "{seq}");
        let (clo, chi) = pair(&arm["credible_interval"]);
        assert!(lo < clo && chi < hi, "sequence [{lo}, {hi}] vs credible [{clo}, {chi}]");
        cs.insert(id, ((lo, hi), rate));
    }
    let effects = seq["effects"].as_array().unwrap();
    assert_eq!(effects.len(), cs.len() - 1, "one effect per arm but the control: {seq}");
    let ((clo, chi), control_rate) = cs[control];
    for e in effects {
        let ((lo, hi), rate) = cs[s(&e["arm_id"])];
        let (elo, ehi) = pair(&e["vs_control"]["interval"]);
        let est = f(&e["vs_control"]["estimate"]);
        assert!((elo - (lo - chi)).abs() < 1e-12 && (ehi - (hi - clo)).abs() < 1e-12, "{e}");
        assert!((est - (rate - control_rate)).abs() < 1e-12 && elo <= est && est <= ehi, "{e}");
    }
}

#[test]
fn the_rules_differ_on_a_small_early_lead() {
    let bayes = TestApp::spawn_with(&[("SAMPLIT_ENGINE__DECISION_RULE", "bayesian")]);
    let seq = TestApp::spawn();
    let tb = bayes.register("a@example.com");
    let ts = seq.register("a@example.com");
    // About 400 visitors per arm, Control at 5%, B at 10%: P(B best) ≈ 0.99 and a tiny
    // expected loss, so the Bayesian thresholds declare B; the sequences (Control's upper
    // bound ≈ 10.3%, B's lower ≈ 5.3%, from mpmath) still overlap.
    let (id_b, b, control) = feed(&bayes, &tb, "lead", 800, 20, 10);
    let (id_s, _, control2) = feed(&seq, &ts, "lead", 800, 20, 10);
    let (ab, as_) = (analytics(&bayes, &tb, &id_b), analytics(&seq, &ts, &id_s));
    check_sane(&ab, &control);
    check_sane(&as_, &control2);

    let rec_b = &ab["recommendation"];
    assert_eq!(rec_b["decision"], "declare_winner", "{ab}");
    assert_eq!(rec_b["winner_arm_id"], b.as_str());
    let rec_s = &as_["recommendation"];
    assert_eq!(rec_s["decision"], "keep_running", "{as_}");
    assert!(rec_s["winner_arm_id"].is_null());
    // Both answer the sequential block, whichever rule the recommendation follows, and the
    // same data give the same block.
    for a in [&ab, &as_] {
        assert_eq!(a["sequential"]["decision"], "keep_running", "{}", a["sequential"]);
        assert!(a["sequential"]["winner_arm_id"].is_null());
    }
    assert_eq!(ab["sequential"]["arms"].as_array().unwrap().len(), 2);
    assert_eq!(s(&as_["sequential"]["reason"]), s(&rec_s["reason"]));
    let ps = pair(&as_["sequential"]["arms"][1]["confidence_sequence"]);
    let pb = pair(&ab["sequential"]["arms"][1]["confidence_sequence"]);
    assert_eq!(ps, pb, "the same counts on both servers");
    println!("small lead: Bayesian {}, sequential {}", rec_b["decision"], rec_s["decision"]);

    // A large lead (30% against 5%) is clear to both rules, and the sequential
    // recommendation names the same arm as its block.
    let (id, b, control) = feed(&seq, &ts, "clear", 800, 20, 3);
    let a = analytics(&seq, &ts, &id);
    check_sane(&a, &control);
    assert_eq!(a["recommendation"]["decision"], "declare_winner", "{a}");
    assert_eq!(a["recommendation"]["winner_arm_id"], b.as_str());
    assert_eq!(a["sequential"]["winner_arm_id"], b.as_str());
    let (lo, _) = pair(&a["sequential"]["effects"][0]["vs_control"]["interval"]);
    assert!(lo > 0.0, "B beats Control at every look: {}", a["sequential"]);
}

/// `"allocation": "fast_learning"` in live traffic: top-two Thompson sampling keeps half the
/// traffic on the leader and spreads the rest over the challengers, where Thompson sampling
/// would give the leader nearly everything.
#[test]
fn fast_learning_allocation_keeps_challengers_in_play() {
    let app = TestApp::spawn_with(&[("SAMPLIT_ENGINE__REFRESH_INTERVAL_MS", "20")]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let mut bad = ab_body("nope");
    bad["allocation"] = json!("fastest");
    let r = app.post("/api/v1/experiments", Some(&t), &bad);
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("allocation"), "{}", r.text);

    let mut body = ab_body("three");
    body["allocation"] = json!("fast_learning");
    body["variants"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "C", "content": {"text": "Take it"}}));
    let exp = app.running_ab(&t, body);
    assert_eq!(exp["allocation"], "fast_learning", "{exp}");
    let id = s(&exp["id"]).to_string();
    // C always converts, the others never.
    for i in 0..300 {
        let user = format!("u{i}");
        let r = app.assign(&sk, &id, &user);
        assert_eq!(r.status, 200, "{}", r.text);
        if r.body["variants"][0]["variant_name"] == "C" {
            assert_eq!(app.convert(&sk, &id, &user).body["recorded"], true);
        }
        if i % 50 == 49 {
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
    }
    let a = analytics(&app, &t, &id);
    assert_eq!(a["allocation"], "fast_learning");
    assert!(a["weights_version"].as_u64().unwrap_or(0) > 1, "{a}");
    let w: HashMap<String, f64> = a["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (s(&x["name"]).to_string(), f(&x["traffic_weight"])))
        .collect();
    // P(C best) ≈ 1: w_C = ½, each challenger ¼ (with the 1% floor: 0.01 + 0.97·w).
    assert!((w["C"] - 0.495).abs() < 0.01, "{w:?}");
    assert!((w["B"] - 0.2525).abs() < 0.01 && (w["Control"] - 0.2525).abs() < 0.01, "{w:?}");
}

fn simulate(app: &TestApp, body: &Value) -> Value {
    let r = app.post("/api/v1/simulate", None, body);
    assert_eq!(r.status, 200, "{body}: {}", r.text);
    r.body
}

fn strategy<'a>(sim: &'a Value, name: &str) -> &'a Value {
    let results = sim["results"].as_array().unwrap();
    results.iter().find(|x| x["strategy"] == name).unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn simulate_stop_rules_and_fast_learning() {
    let app = TestApp::spawn_with(&[("SAMPLIT_LIMITS__SIMULATE_PER_IP", "100")]);
    let arms2 = json!([{"true_rate": 0.1}, {"true_rate": 0.2}]);
    for (body, field) in [
        (json!({"arms": arms2, "visitors": 100, "stop_rule": "early"}), "stop_rule"),
        (json!({"arms": arms2, "visitors": 100, "strategies": ["fastest"]}), "strategies"),
    ] {
        let r = app.post("/api/v1/simulate", None, &body);
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        let named = r.body["error"]["details"]["field"].as_str().unwrap_or("");
        assert!(named.contains(field), "{body} names {field}: {}", r.text);
    }

    // Four close arms, no stop: top-two sampling is sure of the best arm sooner, Thompson
    // sampling earns more on the way.
    let four = json!({
        "arms": [{"true_rate": 0.05}, {"true_rate": 0.06}, {"true_rate": 0.07}, {"true_rate": 0.08}],
        "visitors": 40_000, "seed": 21, "repetitions": 30,
        "strategies": ["adaptive", "fast_learning"]
    });
    let sim = simulate(&app, &four);
    assert_eq!(sim["stop_rule"], "none");
    let (ad, fl) = (strategy(&sim, "adaptive"), strategy(&sim, "fast_learning"));
    for x in [ad, fl] {
        assert_eq!(f(&x["stopping"]["mean_visitors"]), 40_000.0, "{}", x["stopping"]);
        assert_eq!(f(&x["stopping"]["stopped_share"]), 0.0);
    }
    let (vad, vfl) = (f(&ad["visitors_to_confidence"]), f(&fl["visitors_to_confidence"]));
    let (sad, sfl) = (f(&ad["confidence_share"]), f(&fl["confidence_share"]));
    let (cad, cfl) = (f(&ad["conversions"]), f(&fl["conversions"]));
    println!(
        "four arms 5/6/7/8%, 40,000 visitors, 30 runs: P(best) >= 0.95 after {vad:.0} visitors \
         ({:.0}% of runs) adaptive, {vfl:.0} ({:.0}%) fast_learning; conversions {cad:.0} vs {cfl:.0}",
        sad * 100.0,
        sfl * 100.0
    );
    assert!(vfl < vad && sfl >= sad, "fast_learning learns sooner");
    assert!(cad > cfl, "adaptive earns more meanwhile");

    // 5% against 6.5% with a fixed split, stopping at the sequential rule's first decision.
    let detect = json!({
        "arms": [{"true_rate": 0.05}, {"true_rate": 0.065}],
        "visitors": 100_000, "seed": 5, "repetitions": 30,
        "strategies": ["fixed"], "stop_rule": "sequential"
    });
    let sim = simulate(&app, &detect);
    assert_eq!(sim["stop_rule"], "sequential");
    let st = &strategy(&sim, "fixed")["stopping"];
    let (mean, correct) = (f(&st["mean_visitors"]), f(&st["correct_winner_share"]));
    println!(
        "5% vs 6.5%, fixed split, sequential stop: declared the right arm in {:.0}% of 30 runs \
         (stopped {:.0}%), after {mean:.0} visitors on average (horizon 100,000)",
        correct * 100.0,
        f(&st["stopped_share"]) * 100.0
    );
    assert!(correct >= 0.8, "{st}");
    assert_eq!(f(&st["declared_winner_share"]), correct, "no wrong declaration: {st}");
    assert!(mean < 60_000.0, "{st}");

    // Equal arms, a look every 100 visitors: the sequential rule rarely declares, the
    // Bayesian thresholds often do, and every declaration is wrong.
    let mut shares = Vec::new();
    for rule in ["sequential", "bayesian"] {
        let aa = json!({
            "arms": [{"true_rate": 0.05}, {"true_rate": 0.05}],
            "visitors": 20_000, "seed": 9, "repetitions": 100,
            "strategies": ["fixed", "adaptive"], "stop_rule": rule
        });
        let sim = simulate(&app, &aa);
        for name in ["fixed", "adaptive"] {
            let st = &strategy(&sim, name)["stopping"];
            assert_eq!(f(&st["correct_winner_share"]), 0.0, "{st}");
            let declared = f(&st["declared_winner_share"]);
            println!(
                "A/A 5% vs 5%, {name}, {rule} stop: declared a winner in {:.0}% of 100 runs",
                declared * 100.0
            );
            shares.push((rule, name, declared));
        }
    }
    for &(rule, name, d) in &shares {
        if rule == "sequential" {
            assert!(d <= 0.05, "{name}: {d}");
            let bayes = shares.iter().find(|s| s.0 == "bayesian" && s.1 == name).unwrap().2;
            assert!(bayes > d, "{name}: Bayesian {bayes} vs sequential {d}");
        }
    }
}
