//! End-to-end tests of the results the server computes — analytics, SRM, the recommendation,
//! main effects, the timeseries, the public simulator, the tracker's rate limit and
//! `samplit demo` — against the real binary, checked against computations done here.

mod common;

use common::{TestApp, ab_body};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// Independent maths (nothing here calls samplit's own functions).

/// ln Γ(x) for x > 0 by the Lanczos approximation (g = 7, 9 coefficients; ~1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// P(p_B > p_A) for p_A ~ Beta(aa, ba), p_B ~ Beta(ab, bb) with integer `ab`, by Evan
/// Miller's closed form (https://www.evanmiller.org/bayesian-ab-testing.html):
/// Σ_{i=0}^{α_B−1} B(α_A+i, β_A+β_B) / ((β_B+i) · B(1+i, β_B) · B(α_A, β_A)).
fn miller_prob_b_beats_a(aa: f64, ba: f64, ab: f64, bb: f64) -> f64 {
    (0..ab as u64)
        .map(|i| {
            let i = i as f64;
            (ln_beta(aa + i, ba + bb) - (bb + i).ln() - ln_beta(1.0 + i, bb) - ln_beta(aa, ba))
                .exp()
        })
        .sum()
}

/// E[max(p_A, p_B)] = ∫₀¹ (1 − F_A(x)·F_B(x)) dx, with both CDFs from a fine trapezoid
/// integration of the densities.
fn expected_max(aa: f64, ba: f64, ab: f64, bb: f64) -> f64 {
    let n = 400_000usize;
    let h = 1.0 / n as f64;
    let pdf = |x: f64, a: f64, b: f64| {
        if x <= 0.0 || x >= 1.0 {
            return 0.0;
        }
        ((a - 1.0) * x.ln() + (b - 1.0) * (1.0 - x).ln() - ln_beta(a, b)).exp()
    };
    let (mut fa, mut fb) = (0.0, 0.0);
    let (mut pa, mut pb) = (pdf(0.0, aa, ba), pdf(0.0, ab, bb));
    let mut prev = 1.0; // 1 − F_A(0)·F_B(0)
    let mut total = 0.0;
    for k in 1..=n {
        let x = k as f64 * h;
        let (qa, qb) = (pdf(x, aa, ba), pdf(x, ab, bb));
        fa += 0.5 * h * (pa + qa);
        fb += 0.5 * h * (pb + qb);
        let cur = 1.0 - fa.min(1.0) * fb.min(1.0);
        total += 0.5 * h * (prev + cur);
        (pa, pb, prev) = (qa, qb, cur);
    }
    total
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want} (±{tol})");
}

// ---------------------------------------------------------------------------------------
// Helpers over the HTTP API.

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn variant_name(r: &Value) -> String {
    r["variants"][0]["variant_name"].as_str().unwrap_or("").to_string()
}

/// A fixed 50/50 A/B test with a chosen hash seed.
fn fixed_ab(name: &str, seed: &str) -> Value {
    let mut b = ab_body(name);
    b["allocation"] = json!("fixed");
    b["seed"] = json!(seed);
    b
}

fn analytics(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/analytics/experiments/{id}"), Some(token));
    assert_eq!(r.status, 200, "analytics: {}", r.text);
    r.body
}

fn arm<'a>(analytics: &'a Value, arm_id: &str) -> &'a Value {
    analytics["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm_id"] == arm_id)
        .unwrap_or_else(|| panic!("no arm {arm_id} in {analytics}"))
}

/// The batch endpoint needs the owner's token; `token` is the experiment's owner's.
fn batch_assign(app: &TestApp, t: &str, sk: &str, exp: &str, users: &[String]) -> Vec<Value> {
    let r = app.post(
        "/api/v1/tracker/assign/batch",
        Some(t),
        &json!({"site_key": sk, "experiment_id": exp, "user_ids": users}),
    );
    assert_eq!(r.status, 200, "batch assign: {}", r.text);
    r.body["assignments"].as_array().unwrap().clone()
}

/// Bucketing of a fixed experiment depends only on its seed and the user id, so a probe
/// experiment with the same seed tells which users a second experiment will put in which
/// arm. Returns (users in Control, users in B) among `n` candidates.
fn probe(app: &TestApp, token: &str, sk: &str, seed: &str, n: usize) -> (Vec<String>, Vec<String>) {
    let exp = app.running_ab(token, fixed_ab(&format!("probe {seed}"), seed));
    let users: Vec<String> = (0..n).map(|i| format!("{seed}-user-{i}")).collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for item in batch_assign(app, token, sk, s(&exp["id"]), &users) {
        let user = s(&item["user_id"]).to_string();
        match s(&item["variants"][0]["variant_name"]) {
            "Control" => a.push(user),
            "B" => b.push(user),
            other => panic!("unexpected variant {other}"),
        }
    }
    (a, b)
}

/// Assigns each user one by one and checks it lands in the arm the probe predicted.
fn assign_expecting(app: &TestApp, sk: &str, exp: &str, users: &[String], arm_name: &str) {
    for user in users {
        let r = app.assign(sk, exp, user);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(variant_name(&r.body), arm_name, "{user} follows the seed's buckets");
    }
}

fn convert_all(app: &TestApp, sk: &str, exp: &str, users: &[String]) {
    for user in users {
        let r = app.convert(sk, exp, user);
        assert_eq!(r.body["recorded"], true, "convert {user}: {}", r.text);
    }
}

fn hour_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 3600
}

// ---------------------------------------------------------------------------------------

#[test]
fn ab_analytics_agree_with_an_independent_computation() {
    // The recommendation checked at the end is the Bayesian rule's (tests/sequential.rs has
    // the sequential one, the default).
    let app = TestApp::spawn_with(&[("SAMPLIT_ENGINE__DECISION_RULE", "bayesian")]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let seed = "analytics-closed-form";
    let (in_a, in_b) = probe(&app, &t, &sk, seed, 600);
    assert!(in_a.len() >= 120 && in_b.len() >= 120, "{} / {}", in_a.len(), in_b.len());

    let exp = app.running_ab(&t, fixed_ab("closed form", seed));
    let id = s(&exp["id"]).to_string();
    let variants = exp["elements"][0]["variants"].as_array().unwrap();
    assert_eq!(variants[0]["is_control"], true);
    let (ctrl, b) = (s(&variants[0]["id"]).to_string(), s(&variants[1]["id"]).to_string());

    // 120 visitors per arm; 12 conversions in Control (10%), 24 in B (20%).
    assign_expecting(&app, &sk, &id, &in_a[..120], "Control");
    assign_expecting(&app, &sk, &id, &in_b[..120], "B");
    convert_all(&app, &sk, &id, &in_a[..12]);
    convert_all(&app, &sk, &id, &in_b[..24]);

    let a = analytics(&app, &t, &id);
    assert_eq!(a["experiment_id"], id.as_str());
    assert_eq!(a["status"], "running");
    assert_eq!(u(&a["visitors"]), 240);
    assert_eq!(u(&a["conversions"]), 36);
    assert_eq!(a["arms"].as_array().unwrap().len(), 2);
    let (ac, ab) = (arm(&a, &ctrl), arm(&a, &b));
    assert_eq!(ac["variant_ids"], json!([ctrl]));
    assert_eq!(ab["variant_ids"], json!([b]));
    assert_eq!(ac["name"], "Control");
    assert_eq!((u(&ac["allocations"]), u(&ac["conversions"])), (120, 12));
    assert_eq!((u(&ab["allocations"]), u(&ab["conversions"])), (120, 24));
    close(f(&ac["conversion_rate"]), 0.1, 1e-12, "control rate");
    close(f(&ab["conversion_rate"]), 0.2, 1e-12, "B rate");

    // Posteriors under the uniform prior: Beta(1 + c, 1 + n − c).
    assert_eq!((f(&ac["posterior"]["alpha"]), f(&ac["posterior"]["beta"])), (13.0, 109.0));
    assert_eq!((f(&ab["posterior"]["alpha"]), f(&ab["posterior"]["beta"])), (25.0, 97.0));

    // P(B > A) by the closed form, computed here. Reference from mpmath 1.3.0 (mp.dps = 40)
    // summing the same series with mpmath.beta: 0.984470725417054.
    let p_b = miller_prob_b_beats_a(13.0, 109.0, 25.0, 97.0);
    close(p_b, 0.984_470_725_417_054, 1e-12, "the test's own closed form vs mpmath");
    close(f(&ab["prob_best"]), p_b, 1e-8, "B prob_best vs closed form");
    close(f(&ac["prob_best"]), 1.0 - p_b, 1e-8, "Control prob_best vs closed form");
    close(f(&ab["prob_beat_control"]), p_b, 1e-8, "B prob_beat_control vs closed form");
    assert!(ac["prob_beat_control"].is_null(), "the control is not compared with itself");

    // Expected loss E[max] − E[p_i]: ≥ 0, larger for the loser, and from the same E[max]
    // (so the difference is exactly the gap of the posterior means). Reference from mpmath
    // quad of ∫(1 − I_x(13,109)·I_x(25,97))dx: E[max] = 0.205176073919274, losses
    // 0.0986186968700939 (Control) and 0.000258041132388965 (B).
    let (loss_c, loss_b) = (f(&ac["expected_loss"]), f(&ab["expected_loss"]));
    assert!(loss_c >= 0.0 && loss_b >= 0.0);
    assert!(loss_c > loss_b, "the loser loses more: {loss_c} vs {loss_b}");
    let emax = expected_max(13.0, 109.0, 25.0, 97.0);
    close(emax, 0.205_176_073_919_274, 1e-8, "the test's own E[max] vs mpmath");
    close(loss_c, emax - 13.0 / 122.0, 1e-7, "Control expected loss");
    close(loss_b, emax - 25.0 / 122.0, 1e-7, "B expected loss");
    close(loss_c - loss_b, 12.0 / 122.0, 1e-9, "loss gap = gap of posterior means");

    // 95% equal-tailed credible intervals. Reference quantiles from mpmath 1.3.0
    // (bisection on betainc(a, b, 0, x, regularized=True) at 0.025 and 0.975):
    // Beta(13,109): [0.0584601210632168, 0.166828779189107];
    // Beta(25,97): [0.138395367761153, 0.280596169848396].
    for (x, rate, lo_ref, hi_ref) in [
        (ac, 0.1, 0.058_460_121_063_216_8, 0.166_828_779_189_107),
        (ab, 0.2, 0.138_395_367_761_153, 0.280_596_169_848_396),
    ] {
        let ci = x["credible_interval"].as_array().unwrap();
        let (lo, hi) = (f(&ci[0]), f(&ci[1]));
        assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo < hi);
        assert!(lo < rate && rate < hi, "the interval holds the rate {rate}: [{lo}, {hi}]");
        close(lo, lo_ref, 1e-7, "lower 2.5% quantile");
        close(hi, hi_ref, 1e-7, "upper 97.5% quantile");
    }

    close(f(&ab["lift_vs_control"]), 0.2 / 0.1 - 1.0, 1e-12, "lift of B");
    assert!(ac["lift_vs_control"].is_null());
    let weights: f64 = a["arms"].as_array().unwrap().iter().map(|x| f(&x["traffic_weight"])).sum();
    close(weights, 1.0, 1e-9, "traffic weights sum to 1");
    close(f(&ac["traffic_weight"]), 0.5, 1e-9, "fixed split");
    assert_eq!(a["srm"]["mismatch"], false);
    close(f(&a["srm"]["p_value"]), 1.0, 1e-9, "a perfectly balanced split");
    let rec = &a["recommendation"];
    assert!(
        ["keep_running", "declare_winner", "stop_no_difference"].contains(&s(&rec["decision"])),
        "{rec}"
    );
    assert!(!s(&rec["reason"]).trim().is_empty());
    // Defaults: prob_best ≥ 0.95, expected loss < 0.001, ≥ 100 visitors per arm. B has
    // 0.984, 0.000258 and 120: a winner.
    assert_eq!(rec["decision"], "declare_winner", "{rec}");
    assert_eq!(rec["winner_arm_id"], b.as_str());
    assert_eq!(a["elements"], json!([]), "an A/B test has no main effects to show");
}

#[test]
fn srm_flags_a_skewed_split_and_only_then() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let seed = "analytics-srm";
    let (in_a, in_b) = probe(&app, &t, &sk, seed, 600);
    assert!(in_a.len() >= 200 && in_b.len() >= 130, "{} / {}", in_a.len(), in_b.len());

    // A mild, plausible imbalance: 130 vs 110 against 50/50. Pearson χ² = 2·10²/120 = 5/3,
    // p = erfc(√(χ²/2)) = 0.19670560245894689 (mpmath 1.3.0, mp.dps = 40).
    let mild = app.running_ab(&t, fixed_ab("mild", seed));
    let mild_id = s(&mild["id"]);
    assign_expecting(&app, &sk, mild_id, &in_a[..130], "Control");
    assign_expecting(&app, &sk, mild_id, &in_b[..110], "B");
    let m = analytics(&app, &t, mild_id);
    assert_eq!(m["srm"]["mismatch"], false, "{}", m["srm"]);
    close(f(&m["srm"]["p_value"]), 0.196_705_602_458_946_9, 1e-6, "mild SRM p-value");

    // The visitors of B mostly never reach the experiment (as a broken redirect would do):
    // 200 vs 20. χ² = 2·90²/110 = 147.27, p = 6.84e-34 (mpmath).
    let skew = app.running_ab(&t, fixed_ab("skewed", seed));
    let skew_id = s(&skew["id"]);
    assign_expecting(&app, &sk, skew_id, &in_a[..200], "Control");
    assign_expecting(&app, &sk, skew_id, &in_b[..20], "B");
    let k = analytics(&app, &t, skew_id);
    assert_eq!(k["srm"]["mismatch"], true, "{}", k["srm"]);
    let p = f(&k["srm"]["p_value"]);
    assert!((0.0..1e-20).contains(&p), "skewed SRM p-value {p}");
    if let Some(chi2) = k["srm"]["chi2"].as_f64() {
        close(chi2, 2.0 * 90.0 * 90.0 / 110.0, 1e-9, "Pearson chi2");
    }

    // Below 8 visitors per arm there is no test.
    let small = app.running_ab(&t, fixed_ab("small", seed));
    let small_id = s(&small["id"]);
    assign_expecting(&app, &sk, small_id, &in_a[..20], "Control");
    assign_expecting(&app, &sk, small_id, &in_b[..7], "B");
    let sm = analytics(&app, &t, small_id);
    assert!(sm["srm"]["p_value"].is_null(), "{}", sm["srm"]);
    assert_eq!(sm["srm"]["mismatch"], false);
    // One more visitor in B makes 8: now it is tested.
    assign_expecting(&app, &sk, small_id, &in_b[7..8], "B");
    let sm = analytics(&app, &t, small_id);
    assert!(sm["srm"]["p_value"].is_number(), "{}", sm["srm"]);
}

#[test]
fn recommendation_declares_a_clear_winner() {
    let app = TestApp::spawn_with(&[
        ("SAMPLIT_ENGINE__MIN_SAMPLE", "100"),
        ("SAMPLIT_ENGINE__DECISION_RULE", "bayesian"),
    ]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let exp = app.running_ab(&t, fixed_ab("winner", "analytics-winner"));
    let id = s(&exp["id"]).to_string();
    let b_id = s(&exp["elements"][0]["variants"][1]["id"]).to_string();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut send = |from: usize, to: usize| {
        let users: Vec<String> = (from..to).map(|i| format!("w-{i}")).collect();
        for item in batch_assign(&app, &t, &sk, &id, &users) {
            let name = s(&item["variants"][0]["variant_name"]).to_string();
            let j = seen.entry(name.clone()).or_default();
            // B converts 30% of its visitors, Control 5%.
            let converts = if name == "B" { *j % 10 < 3 } else { j.is_multiple_of(20) };
            *j += 1;
            if converts {
                convert_all(&app, &sk, &id, &[s(&item["user_id"]).to_string()]);
            }
        }
    };
    // 120 visitors: fewer than 100 per arm, so no decision yet, however clear.
    send(0, 120);
    let a = analytics(&app, &t, &id);
    assert_eq!(a["recommendation"]["decision"], "keep_running", "{}", a["recommendation"]);
    assert!(a["recommendation"]["winner_arm_id"].is_null());
    send(120, 600);
    let a = analytics(&app, &t, &id);
    let min_n = a["arms"].as_array().unwrap().iter().map(|x| u(&x["allocations"])).min().unwrap();
    assert!(min_n >= 100, "both arms past min_sample: {min_n}");
    let rec = &a["recommendation"];
    assert_eq!(rec["decision"], "declare_winner", "{a}");
    assert_eq!(rec["winner_arm_id"], b_id.as_str());
    assert!(!s(&rec["reason"]).is_empty());
    let b = arm(&a, &b_id);
    assert!(f(&b["prob_best"]) > 0.99 && f(&b["expected_loss"]) < 0.001, "{b}");
}

#[test]
fn recommendation_stops_when_arms_are_equal() {
    let app = TestApp::spawn_with(&[
        ("SAMPLIT_ENGINE__MIN_SAMPLE", "100"),
        ("SAMPLIT_ENGINE__LOSS_THRESHOLD", "0.05"),
        ("SAMPLIT_ENGINE__DECISION_RULE", "bayesian"),
    ]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let exp = app.running_ab(&t, fixed_ab("equal", "analytics-equal"));
    let id = s(&exp["id"]).to_string();
    let users: Vec<String> = (0..600).map(|i| format!("e-{i}")).collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in batch_assign(&app, &t, &sk, &id, &users) {
        let j = seen.entry(s(&item["variants"][0]["variant_name"]).to_string()).or_default();
        // Every fifth visitor of each arm converts: the same 20% in both.
        if j.is_multiple_of(5) {
            convert_all(&app, &sk, &id, &[s(&item["user_id"]).to_string()]);
        }
        *j += 1;
    }
    let a = analytics(&app, &t, &id);
    let arms = a["arms"].as_array().unwrap();
    assert!(arms.iter().all(|x| u(&x["allocations"]) >= 100), "{a}");
    for x in arms {
        let rate = f(&x["conversion_rate"]);
        assert!((rate - 0.2).abs() < 0.01, "about 20% each: {rate}");
        assert!(f(&x["expected_loss"]) < 0.05 && f(&x["prob_best"]) < 0.95, "{x}");
    }
    let rec = &a["recommendation"];
    assert_eq!(rec["decision"], "stop_no_difference", "{a}");
    assert!(rec["winner_arm_id"].is_null());
    assert!(!s(&rec["reason"]).is_empty());
}

#[test]
fn multi_element_arms_and_main_effects() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let body = json!({
        "name": "2x2", "type": "multi_element", "allocation": "adaptive",
        "goal": {"type": "click", "selector": "#buy"},
        "elements": [
            {"name": "CTA", "selector": "#cta", "variants": [
                {"name": "CTA-A", "is_control": true, "content": {}},
                {"name": "CTA-B", "content": {"text": "Go"}}]},
            {"name": "Copy", "selector": "#hero", "variants": [
                {"name": "Copy-X", "is_control": true, "content": {}},
                {"name": "Copy-Y", "content": {"text": "Now"}}]}
        ]
    });
    let exp = app.running_ab(&t, body);
    let id = s(&exp["id"]).to_string();
    let elements = exp["elements"].as_array().unwrap();
    assert_eq!(elements.len(), 2);

    // Visitors through the single assign; CTA-B + Copy-Y converts every other visitor,
    // every other combination every tenth.
    let mut combos: HashMap<Vec<String>, (u64, u64)> = HashMap::new();
    for i in 0..300 {
        let user = format!("m-{i}");
        let r = app.assign(&sk, &id, &user);
        assert_eq!(r.status, 200, "{}", r.text);
        let vs = r.body["variants"].as_array().unwrap();
        assert_eq!(vs.len(), 2, "one variant per element");
        let key: Vec<String> = vs.iter().map(|v| s(&v["variant_id"]).to_string()).collect();
        let names: Vec<&str> = vs.iter().map(|v| s(&v["variant_name"])).collect();
        let e = combos.entry(key).or_default();
        let every = if names == ["CTA-B", "Copy-Y"] { 2 } else { 10 };
        if e.0.is_multiple_of(every) {
            convert_all(&app, &sk, &id, &[user]);
            e.1 += 1;
        }
        e.0 += 1;
    }

    let a = analytics(&app, &t, &id);
    assert_eq!(u(&a["visitors"]), 300);
    let arms = a["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 4, "2 × 2 combinations");
    let mut seen_keys = Vec::new();
    for x in arms {
        let key: Vec<String> =
            x["variant_ids"].as_array().unwrap().iter().map(|v| s(v).to_string()).collect();
        assert_eq!(key.len(), 2);
        for (ei, vid) in key.iter().enumerate() {
            let ok = elements[ei]["variants"].as_array().unwrap().iter().any(|v| v["id"] == **vid);
            assert!(ok, "variant {vid} belongs to element {ei}");
        }
        let (n, c) = combos.get(&key).copied().unwrap_or((0, 0));
        assert_eq!((u(&x["allocations"]), u(&x["conversions"])), (n, c), "arm {}", x["name"]);
        seen_keys.push(key);
    }
    seen_keys.sort();
    seen_keys.dedup();
    assert_eq!(seen_keys.len(), 4, "every combination once");
    let pb: f64 = arms.iter().map(|x| f(&x["prob_best"])).sum();
    close(pb, 1.0, 1e-6, "prob_best over combinations");

    let effects = a["elements"].as_array().unwrap();
    assert_eq!(effects.len(), 2);
    for (ei, el) in effects.iter().enumerate() {
        assert_eq!(el["element_id"], elements[ei]["id"]);
        let vs = el["variants"].as_array().unwrap();
        assert_eq!(vs.len(), 2);
        let mut sum = 0.0;
        for v in vs {
            let ok = elements[ei]["variants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == v["variant_id"]);
            assert!(ok, "{v}");
            let r = f(&v["marginal_rate"]);
            assert!((0.0..=1.0).contains(&r), "{v}");
            sum += f(&v["prob_best"]);
        }
        close(sum, 1.0, 1e-6, "prob_best within an element");
    }
    assert!(a["interaction"]["detected"].is_boolean(), "{}", a["interaction"]);
}

#[test]
fn timeseries_buckets_add_up_to_the_totals() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let exp = app.running_ab(&t, fixed_ab("series", "analytics-series"));
    let id = s(&exp["id"]).to_string();
    let hour_before = hour_now();
    let users: Vec<String> = (0..200).map(|i| format!("s-{i}")).collect();
    for (i, item) in batch_assign(&app, &t, &sk, &id, &users).iter().enumerate() {
        if i.is_multiple_of(7) {
            convert_all(&app, &sk, &id, &[s(&item["user_id"]).to_string()]);
        }
    }
    let hour_after = hour_now();
    let a = analytics(&app, &t, &id);
    assert_eq!(u(&a["visitors"]), 200);

    for bucket in ["hour", "day"] {
        let r = app.get(
            &format!("/api/v1/analytics/experiments/{id}/timeseries?bucket={bucket}"),
            Some(&t),
        );
        assert_eq!(r.status, 200, "{bucket}: {}", r.text);
        let buckets = r.body["buckets"].as_array().unwrap();
        let same = if bucket == "hour" {
            hour_before == hour_after
        } else {
            hour_before / 24 == hour_after / 24
        };
        if same {
            assert_eq!(buckets.len(), 1, "all traffic is from this {bucket}: {}", r.text);
        } else {
            assert!((1..=2).contains(&buckets.len()), "{}", r.text);
        }
        let mut totals: HashMap<String, (u64, u64)> = HashMap::new();
        for b in buckets {
            assert!(s(&b["start"]).ends_with('Z') || s(&b["start"]).contains('+'), "{b}");
            let rows = b["arms"].as_array().unwrap();
            assert_eq!(rows.len(), 2);
            let pb: f64 = rows.iter().map(|x| f(&x["prob_best"])).sum();
            close(pb, 1.0, 1e-6, "prob_best per bucket");
            for x in rows {
                let e = totals.entry(s(&x["arm_id"]).to_string()).or_default();
                e.0 += u(&x["allocations"]);
                e.1 += u(&x["conversions"]);
            }
        }
        for x in a["arms"].as_array().unwrap() {
            let got = totals.get(s(&x["arm_id"])).copied().unwrap_or((0, 0));
            assert_eq!(got, (u(&x["allocations"]), u(&x["conversions"])), "{bucket}: {x}");
        }
    }
    let r =
        app.get(&format!("/api/v1/analytics/experiments/{id}/timeseries?bucket=week"), Some(&t));
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"]["details"]["field"], "bucket");
}

fn sim_body() -> Value {
    json!({
        "arms": [{"name": "A", "true_rate": 0.05}, {"name": "B", "true_rate": 0.10}],
        "visitors": 20_000, "seed": 7, "strategies": ["adaptive", "fixed"]
    })
}

#[test]
fn simulate_compares_strategies_reproducibly() {
    let app = TestApp::spawn();
    let r = app.post("/api/v1/simulate", None, &sim_body());
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let by = |name: &str| results.iter().find(|x| x["strategy"] == name).unwrap().clone();
    let (adaptive, fixed) = (by("adaptive"), by("fixed"));
    assert!(
        f(&adaptive["conversions"]) > f(&fixed["conversions"]),
        "adaptive {} vs fixed {}",
        adaptive["conversions"],
        fixed["conversions"]
    );
    // A fixed 50/50 split gives up the 0.05 gap on half the visitors: 0.05 · 20000 / 2 = 500.
    let regret = f(&fixed["regret"]);
    assert!((regret - 500.0).abs() <= 50.0, "fixed regret {regret}");
    assert!(f(&adaptive["regret"]) < regret, "adaptive regrets less");
    for x in [&adaptive, &fixed] {
        let alloc: f64 = x["allocations"].as_array().unwrap().iter().map(f).sum();
        close(alloc, 20_000.0, 1e-9, "allocations add up to the visitors");
        let tl = x["timeline"].as_array().unwrap();
        assert!(!tl.is_empty(), "a timeline");
        for w in tl.windows(2) {
            assert!(f(&w[1]["visitors"]) > f(&w[0]["visitors"]), "{} then {}", w[0], w[1]);
            assert!(f(&w[1]["conversions"]) >= f(&w[0]["conversions"]));
            assert!(f(&w[1]["regret"]) >= f(&w[0]["regret"]));
        }
        assert!(f(&tl[tl.len() - 1]["visitors"]) <= 20_000.0);
    }
    let again = app.post("/api/v1/simulate", None, &sim_body());
    assert_eq!(again.status, 200);
    assert_eq!(again.body, r.body, "the same seed gives the same answer");
}

#[test]
fn simulate_refuses_bad_input_naming_the_field() {
    let app = TestApp::spawn();
    let arms2 = json!([{"true_rate": 0.1}, {"true_rate": 0.2}]);
    let many: Vec<Value> = (0..65).map(|_| json!({"true_rate": 0.1})).collect();
    let cases = [
        (json!({"arms": arms2, "visitors": 0}), "visitors"),
        (json!({"arms": arms2, "visitors": 2_000_000}), "visitors"),
        (json!({"arms": arms2, "visitors": 100, "repetitions": 101}), "repetitions"),
        (json!({"arms": many, "visitors": 100}), "arms"),
        (json!({"arms": [{"true_rate": 0.1}], "visitors": 100}), "arms"),
        (json!({"arms": [{"true_rate": 1.5}, {"true_rate": 0.1}], "visitors": 100}), "true_rate"),
        (json!({"arms": arms2, "visitors": 100, "strategies": ["magic"]}), "strategies"),
    ];
    for (body, field) in cases {
        let r = app.post("/api/v1/simulate", None, &body);
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        let named = r.body["error"]["details"]["field"].as_str().unwrap_or("");
        assert!(named.contains(field), "{body} names {field}: {}", r.text);
    }
}

#[test]
fn simulate_is_rate_limited_per_ip() {
    let app = TestApp::spawn_with(&[("SAMPLIT_LIMITS__SIMULATE_PER_IP", "2")]);
    let body =
        json!({"arms": [{"true_rate": 0.1}, {"true_rate": 0.2}], "visitors": 100, "seed": 1});
    for i in 0..2 {
        let r = app.post("/api/v1/simulate", None, &body);
        assert_eq!(r.status, 200, "call {i}: {}", r.text);
    }
    let r = app.post("/api/v1/simulate", None, &body);
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.code(), "RATE_LIMITED");
    let wait: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
}

#[test]
fn tracker_rate_limit_refuses_and_records_nothing_more() {
    let app = TestApp::spawn_with(&[("SAMPLIT_LIMITS__TRACKER_PER_IP", "5")]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = s(&app.running_ab(&t, ab_body("limited"))["id"]).to_string();
    let start = Instant::now();
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let user = format!("r-{i}");
        let r = app.assign(&sk, &id, &user);
        match r.status {
            200 => ok.push(user),
            429 => {
                assert_eq!(r.code(), "RATE_LIMITED");
                let wait: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
                assert!(wait >= 1);
                refused.push(user);
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert!(!refused.is_empty(), "40 requests in {elapsed:.2}s exceed 5/s with a burst of 10");
    let allowed = 10 + (elapsed * 5.0).ceil() as usize;
    assert!(ok.len() >= 10 && ok.len() <= allowed, "{} allowed in {elapsed:.2}s", ok.len());
    let stats = app.get(&format!("/api/v1/experiments/{id}"), Some(&t)).body["stats"].clone();
    assert_eq!(u(&stats["visitors"]), ok.len() as u64, "only accepted requests count");
    assert_eq!(u(&analytics(&app, &t, &id)["visitors"]), ok.len() as u64);
    // Once the bucket refills, a refused visitor is unknown: nothing was recorded for it.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = app.convert(&sk, &id, &refused[0]);
    assert_eq!((r.status, r.code()), (404, "ASSIGNMENT_NOT_FOUND"), "{}", r.text);
    let r = app.convert(&sk, &id, &ok[0]);
    assert_eq!(r.body["recorded"], true, "{}", r.text);
}

#[test]
fn demo_finds_the_hidden_best_combination() {
    let app = TestApp::spawn();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("demo");
    let dir_s = dir.to_str().unwrap();
    let (code, stdout, stderr) = app.cli(
        &["demo", "--out", dir_s, "--visitors", "10000", "--password", "demo password 1"],
        None,
    );
    assert_eq!(code, 0, "demo: {stdout}\n{stderr}");

    let matrix = std::fs::read_to_string(dir.join("matrix.csv")).unwrap();
    let lines: Vec<&str> = matrix.lines().collect();
    assert_eq!(lines.len(), 10, "a header and 9 combinations:\n{matrix}");
    assert!(lines[0].starts_with("cta,copy,visitors,conversions"), "{}", lines[0]);
    let mut visitors = 0u64;
    let mut pairs = Vec::new();
    for line in &lines[1..] {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 7, "{line}");
        visitors += cols[2].parse::<u64>().unwrap();
        pairs.push(format!("{} + {}", cols[0], cols[1]));
    }
    assert_eq!(visitors, 10_000, "every simulated visitor was assigned:\n{matrix}");
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), 9);

    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["true_best"], "CTA-B + Copy-Y");
    assert_eq!(meta["identified_best"], meta["true_best"], "{meta}");
    assert_eq!(meta["found_true_best"], true);
    assert!(stdout.contains("CTA-B + Copy-Y"), "{stdout}");
    assert!(stdout.contains("demo@samplit.local / demo password 1"), "{stdout}");

    // The demo account logs in and sees the experiment with its traffic.
    let token = app.login("demo@samplit.local", "demo password 1");
    let id = s(&meta["experiment_id"]);
    let a = analytics(&app, &token, id);
    assert_eq!(u(&a["visitors"]), 10_000);
    assert_eq!(a["arms"].as_array().unwrap().len(), 9);
}

/// Behind a trusted proxy each visitor has their own per-IP budget; from anyone else,
/// `X-Forwarded-For` is ignored, so a client cannot mint fresh budgets by inventing it.
#[test]
fn per_ip_limits_see_through_trusted_proxies_only() {
    let exhaust_then_switch = |app: &TestApp| {
        let t = app.register("a@example.com");
        let sk = app.site_key(&t);
        let id = s(&app.running_ab(&t, ab_body("proxied"))["id"]).to_string();
        let send = |xff: &str, user: &str| {
            let body = json!({"site_key": sk, "experiment_id": id, "user_id": user});
            app.send_h(
                "POST",
                "/api/v1/tracker/assign",
                None,
                &[("content-type", "application/json"), ("x-forwarded-for", xff)],
                body.to_string().as_bytes(),
            )
            .status
        };
        let limited = (0..40).any(|i| send("203.0.113.7", &format!("a-{i}")) == 429);
        assert!(limited, "one address runs out of budget");
        send("198.51.100.9, 203.0.113.7", "b-1")
    };
    let behind = TestApp::spawn_with(&[
        ("SAMPLIT_LIMITS__TRACKER_PER_IP", "1"),
        ("SAMPLIT_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ]);
    // The proxy appends the address it saw: the nearest untrusted hop is the visitor.
    assert_eq!(exhaust_then_switch(&behind), 429, "203.0.113.7 is still the nearest hop");
    let behind = TestApp::spawn_with(&[
        ("SAMPLIT_LIMITS__TRACKER_PER_IP", "1"),
        ("SAMPLIT_SERVER__TRUSTED_PROXIES", "127.0.0.0/8, 203.0.113.0/24"),
    ]);
    assert_eq!(exhaust_then_switch(&behind), 200, "another visitor, another budget");
    let direct = TestApp::spawn_with(&[("SAMPLIT_LIMITS__TRACKER_PER_IP", "1")]);
    assert_eq!(exhaust_then_switch(&direct), 429, "the header is not believed");
}
