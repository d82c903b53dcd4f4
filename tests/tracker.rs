//! End-to-end tests of the tracker hot path against the real binary: stickiness, bucketing,
//! conversions, adaptive allocation, durability under kill -9, encrypted state.

mod common;

use common::{TestApp, ab_body};
use serde_json::{Value, json};
use std::collections::HashMap;

fn variant_name(r: &Value) -> String {
    r["variants"][0]["variant_name"].as_str().unwrap_or("").to_string()
}

#[test]
fn assignment_is_sticky_and_well_formed() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let e = app.running_ab(&t, ab_body("sticky"));
    let id = e["id"].as_str().unwrap();
    let first = app.assign(&sk, id, "visitor-1");
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["new"], true);
    assert_eq!(first.body["experiment_id"], id);
    let v = &first.body["variants"][0];
    assert_eq!(v["selector"], "#cta");
    assert_eq!(v["element_id"], e["elements"][0]["id"]);
    assert!(v["content"]["text"].is_string());
    assert_eq!(first.body["goal"]["selector"], "#buy");
    for _ in 0..5 {
        let again = app.assign(&sk, id, "visitor-1");
        assert_eq!(again.body["new"], false);
        assert_eq!(again.body["assignment_id"], first.body["assignment_id"]);
        assert_eq!(again.body["variants"], first.body["variants"]);
    }
    // The same answer through the header and text/plain (what browsers send).
    let body = json!({"experiment_id": id, "user_id": "visitor-1"}).to_string();
    let r = app.send_h(
        "POST",
        "/api/v1/tracker/assign",
        None,
        &[("content-type", "text/plain;charset=UTF-8"), ("x-samplit-site-key", &sk)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["assignment_id"], first.body["assignment_id"]);
}

#[test]
fn bad_tracker_input_is_refused_and_changes_nothing() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("bad"))["id"].as_str().unwrap().to_string();
    let r = app.assign("site_nope", &id, "u");
    assert_eq!((r.status, r.code()), (401, "INVALID_SITE_KEY"));
    let r = app.post("/api/v1/tracker/assign", None, &json!({"experiment_id": id, "user_id": "u"}));
    assert_eq!(r.status, 401, "no site key");
    let r = app.assign(&sk, &id, &"x".repeat(129));
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["details"]["field"], "user_id");
    assert_eq!(app.assign(&sk, &id, "").status, 422);
    assert_eq!(app.assign(&sk, &id, "tab\there").status, 422);
    let r = app.post("/api/v1/tracker/assign", None,
        &json!({"site_key": sk, "experiment_id": id, "user_id": "u", "context": {"blob": "x".repeat(5000)}}));
    assert_eq!(r.body["error"]["details"]["field"], "context");
    let r = app.assign(&sk, "00000000-0000-0000-0000-000000000000", "u");
    assert_eq!((r.status, r.code()), (404, "EXP_NOT_FOUND"));
    let r = app.send("POST", "/api/v1/tracker/assign", None, "application/xml", b"<x/>");
    assert_eq!(r.status, 415);
    let r = app.send("POST", "/api/v1/tracker/assign", None, "text/plain", b"{oops");
    assert_eq!(r.status, 400);
    let r = app.convert(&sk, &id, "never-assigned");
    assert_eq!((r.status, r.code()), (404, "ASSIGNMENT_NOT_FOUND"));
    let r = app.post(
        "/api/v1/tracker/convert",
        None,
        &json!({"site_key": sk, "experiment_id": id, "user_id": "u", "value": "ten"}),
    );
    assert_eq!(r.status, 422);
    let stats = app.get(&format!("/api/v1/experiments/{id}"), Some(&t)).body["stats"].clone();
    assert_eq!(stats["visitors"], 0, "nothing was recorded: {stats}");
}

#[test]
fn only_running_experiments_assign() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let draft = app.post("/api/v1/experiments", Some(&t), &ab_body("draft")).body;
    let id = draft["id"].as_str().unwrap();
    let r = app.assign(&sk, id, "u1");
    assert_eq!((r.status, r.code()), (409, "EXP_NOT_RUNNING"));
    let fb = app.post(
        "/api/v1/tracker/assign",
        None,
        &json!({"site_key": sk, "experiment_id": id, "user_id": "u1", "fallback": true}),
    );
    assert_eq!(fb.status, 200);
    assert_eq!(fb.body["status"], "not_running");
    assert_eq!(fb.body["variants"][0]["variant_name"], "Control");
    app.post(&format!("/api/v1/experiments/{id}/start"), Some(&t), &json!({}));
    assert_eq!(app.assign(&sk, id, "u1").status, 200);
    app.post(&format!("/api/v1/experiments/{id}/pause"), Some(&t), &json!({}));
    assert_eq!(app.assign(&sk, id, "u2").status, 409);
    // A visitor assigned before the pause may still convert.
    assert_eq!(app.convert(&sk, id, "u1").body["recorded"], true);
}

#[test]
fn conversions_count_once_per_goal_and_keep_value() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let mut body = ab_body("conv");
    body["goal"] = json!({"type": "custom", "name": "purchase"});
    let id = app.running_ab(&t, body)["id"].as_str().unwrap().to_string();
    app.assign(&sk, &id, "u1");
    let r = app.post("/api/v1/tracker/convert", None,
        &json!({"site_key": sk, "experiment_id": id, "user_id": "u1", "value": 42.5, "goal": "purchase"}));
    assert_eq!(r.body, json!({"recorded": true}));
    let dup = app.convert(&sk, &id, "u1");
    assert_eq!(
        dup.body,
        json!({"recorded": false, "reason": "duplicate"}),
        "no goal = the primary goal"
    );
    let other = app.post(
        "/api/v1/tracker/convert",
        None,
        &json!({"site_key": sk, "experiment_id": id, "user_id": "u1", "goal": "newsletter"}),
    );
    assert_eq!(other.body["recorded"], true, "another goal is its own conversion");
    let a = app.get(&format!("/api/v1/analytics/experiments/{id}"), Some(&t)).body;
    assert_eq!(a["conversions"], 1, "only the primary goal moves the posterior");
    let arm = a["arms"].as_array().unwrap().iter().find(|x| x["conversions"] == 1).unwrap().clone();
    assert_eq!(arm["value_sum"], 42.5);
    assert_eq!(arm["posterior"]["alpha"], 2.0);
}

#[test]
fn assignment_by_page_url() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let mut shop = ab_body("shop");
    shop["target_url"] = json!("https://shop.example/*");
    let shop_id = app.running_ab(&t, shop)["id"].as_str().unwrap().to_string();
    let mut blog = ab_body("blog");
    blog["target_url"] = json!("https://blog.example/*");
    app.running_ab(&t, blog);
    let everywhere = app.running_ab(&t, ab_body("everywhere"))["id"].as_str().unwrap().to_string();
    let r = app.post(
        "/api/v1/tracker/assign",
        None,
        &json!({"site_key": sk, "user_id": "v", "url": "https://shop.example/cart?x=1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<&str> = r.body["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["experiment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&shop_id.as_str()) && ids.contains(&everywhere.as_str()));
    // Sticky with the by-experiment call.
    let direct = app.assign(&sk, &shop_id, "v");
    assert_eq!(direct.body["new"], false);
}

#[test]
fn batch_assignment_for_campaigns() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("mail"))["id"].as_str().unwrap().to_string();
    let single = app.assign(&sk, &id, "user-7");
    let ids: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
    let r = app.post(
        "/api/v1/tracker/assign/batch",
        Some(&t),
        &json!({"site_key": sk, "experiment_id": id, "user_ids": ids}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body["assignments"].as_array().unwrap();
    assert_eq!(items.len(), 2000);
    assert_eq!(items[7]["user_id"], "user-7");
    assert_eq!(
        items[7]["assignment_id"], single.body["assignment_id"],
        "sticky with single assign"
    );
    let again = app.assign(&sk, &id, "user-1999");
    assert_eq!(again.body["new"], false);
    assert_eq!(again.body["assignment_id"], items[1999]["assignment_id"]);
    let stats = app.get(&format!("/api/v1/experiments/{id}"), Some(&t)).body["stats"].clone();
    assert_eq!(stats["visitors"], 2000);
    let too_many: Vec<String> = (0..10_001).map(|i| format!("u{i}")).collect();
    let r = app.post(
        "/api/v1/tracker/assign/batch",
        Some(&t),
        &json!({"site_key": sk, "experiment_id": id, "user_ids": too_many}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["details"]["field"], "user_ids");
}

#[test]
fn batch_assignment_needs_the_owners_token() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("mail"))["id"].as_str().unwrap().to_string();
    let body = json!({"site_key": sk, "experiment_id": id, "user_ids": ["u1", "u2", "u3"]});
    let visitors = || {
        app.get(&format!("/api/v1/experiments/{id}"), Some(&t)).body["stats"]["visitors"].clone()
    };

    // The public site key alone no longer fills the store.
    let r = app.post("/api/v1/tracker/assign/batch", None, &body);
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"), "{}", r.text);
    assert_eq!(visitors(), 0, "nothing stored");

    // Someone else's token: the experiment is not theirs.
    let other = json!({"email": "b@example.com", "password": "other password"});
    assert_eq!(app.post("/api/v1/users", Some(&t), &other).status, 201);
    let b = app.login("b@example.com", "other password");
    let no_key = json!({"experiment_id": id, "user_ids": ["u1"]});
    let r = app.post("/api/v1/tracker/assign/batch", Some(&b), &no_key);
    assert_eq!((r.status, r.code()), (404, "EXP_NOT_FOUND"), "{}", r.text);
    let r = app.post("/api/v1/tracker/assign/batch", Some(&b), &body);
    assert_eq!(
        (r.status, r.code()),
        (404, "EXP_NOT_FOUND"),
        "with the owner's site key: {}",
        r.text
    );
    assert_eq!(visitors(), 0, "nothing stored");

    // The owner, by session token or API key; the site key may be left out.
    let r = app.post("/api/v1/tracker/assign/batch", Some(&t), &body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["assignments"].as_array().unwrap().len(), 3);
    let key = app.post("/api/v1/api-keys", Some(&t), &json!({"name": "mailer"})).body["key"]
        .as_str()
        .unwrap()
        .to_string();
    let more = json!({"experiment_id": id, "user_ids": ["u3", "u4"]});
    let r = app.post("/api/v1/tracker/assign/batch", Some(&key), &more);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(visitors(), 4);
    // A site key that is not the caller's is refused even with the owner's token.
    let b_site = app.site_key(&b);
    let wrong = json!({"site_key": b_site, "experiment_id": id, "user_ids": ["u9"]});
    let r = app.post("/api/v1/tracker/assign/batch", Some(&t), &wrong);
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"]["details"]["field"], "site_key");
    assert_eq!(visitors(), 4);
}

#[test]
fn fixed_split_matches_growthbook_bucket_for_bucket() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let e = app.running_ab(&t, json!({
        "name": "gb", "allocation": "fixed", "seed": "gb-seed", "traffic_allocation": 0.6,
        "variants": [{"name": "v0", "weight": 2}, {"name": "v1", "weight": 3}, {"name": "v2", "weight": 5}]
    }));
    let id = e["id"].as_str().unwrap();
    // GrowthBook's chooseVariation(hash("gb-seed", "user-i", 2), getBucketRanges(3, 0.6, [.2,.3,.5])),
    // computed from their published algorithm (see engine::hashing tests for the transcription).
    let want = [1, 2, 2, 2, 2, -1, -1, 0, 2, 1, 2, 2, -1, 2, -1, -1, -1, 0, -1, 2, 2, -1, 2, -1];
    for (i, &w) in want.iter().enumerate() {
        let r = app.assign(&sk, id, &format!("user-{i}"));
        if w < 0 {
            assert_eq!(r.body["excluded"], true, "user-{i}: {}", r.text);
            assert_eq!(r.body["variants"], json!([]));
            let again = app.assign(&sk, id, &format!("user-{i}"));
            assert_eq!(again.body["excluded"], true, "excluded visitors stay excluded");
        } else {
            assert_eq!(variant_name(&r.body), format!("v{w}"), "user-{i}");
        }
    }
    let a = app.get(&format!("/api/v1/analytics/experiments/{id}"), Some(&t)).body;
    assert_eq!(a["excluded"], want.iter().filter(|&&w| w < 0).count());
}

#[test]
fn adaptive_allocation_moves_traffic_to_the_winner() {
    let app = TestApp::spawn_with(&[("SAMPLIT_ENGINE__REFRESH_INTERVAL_MS", "20")]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("adaptive"))["id"].as_str().unwrap().to_string();
    // B always converts, Control never does.
    let mut seen: HashMap<String, u32> = HashMap::new();
    for i in 0..300 {
        let user = format!("u{i}");
        let r = app.assign(&sk, &id, &user);
        let name = variant_name(&r.body);
        if name == "B" {
            assert_eq!(app.convert(&sk, &id, &user).body["recorded"], true);
        }
        if i >= 200 {
            *seen.entry(name).or_default() += 1;
        }
        if i % 50 == 49 {
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
    }
    let late_b = seen.get("B").copied().unwrap_or(0);
    assert!(late_b >= 90, "the last 100 visitors mostly went to B: {seen:?}");
    let a = app.get(&format!("/api/v1/analytics/experiments/{id}"), Some(&t)).body;
    let b = a["arms"].as_array().unwrap().iter().find(|x| x["name"] == "B").unwrap().clone();
    assert!(b["traffic_weight"].as_f64().unwrap() > 0.95, "{b}");
    assert!(
        b["traffic_weight"].as_f64().unwrap() <= 0.99 + 1e-9,
        "the floor keeps 1% on the control"
    );
    assert!(a["weights_version"].as_u64().unwrap() > 1);
}

#[test]
fn multi_element_answers_one_variant_per_element() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let e = app.running_ab(&t, json!({
        "name": "mvt", "type": "multi_element",
        "elements": [
            {"name": "CTA", "selector": "#cta", "variants": [{"name": "A"}, {"name": "B"}, {"name": "C"}]},
            {"name": "Copy", "selector": "h1", "variants": [{"name": "X"}, {"name": "Y"}, {"name": "Z"}]}
        ]
    }));
    let id = e["id"].as_str().unwrap();
    let mut combos = std::collections::HashSet::new();
    for i in 0..200 {
        let r = app.assign(&sk, id, &format!("m{i}"));
        let vs = r.body["variants"].as_array().unwrap();
        assert_eq!(vs.len(), 2);
        assert_eq!(vs[0]["selector"], "#cta");
        assert_eq!(vs[1]["selector"], "h1");
        combos.insert(format!("{}{}", vs[0]["variant_name"], vs[1]["variant_name"]));
    }
    assert_eq!(combos.len(), 9, "every combination is served");
    let a = app.get(&format!("/api/v1/analytics/experiments/{id}"), Some(&t)).body;
    assert_eq!(a["arms"].as_array().unwrap().len(), 9);
    assert_eq!(a["visitors"], 200);
}

/// Load from several threads, `kill -9` mid-flight, restart: every acknowledged assignment
/// and conversion is there, and the counters equal the records.
#[test]
fn kill_dash_nine_under_load_loses_nothing_acknowledged() {
    let mut app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("durable"))["id"].as_str().unwrap().to_string();
    let base = app.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (base, sk, id, stop) = (base.clone(), sk.clone(), id.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let agent = common::agent();
            let mut acked: Vec<(String, String, bool)> = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 100_000 {
                let user = format!("w{w}-u{i}");
                i += 1;
                let body = json!({"site_key": sk, "experiment_id": id, "user_id": user});
                let Ok(mut r) = agent
                    .post(format!("{base}/api/v1/tracker/assign"))
                    .header("content-type", "application/json")
                    .send(body.to_string())
                else {
                    break;
                };
                if r.status() != 200 {
                    break;
                }
                let v: Value =
                    serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                        .unwrap_or(Value::Null);
                let aid = v["assignment_id"].as_str().unwrap_or("").to_string();
                let mut converted = false;
                if i % 3 == 0 {
                    match agent
                        .post(format!("{base}/api/v1/tracker/convert"))
                        .header("content-type", "application/json")
                        .send(body.to_string())
                    {
                        Ok(mut c) if c.status() == 200 => {
                            let cv: Value = serde_json::from_str(
                                &c.body_mut().read_to_string().unwrap_or_default(),
                            )
                            .unwrap_or(Value::Null);
                            converted = cv["recorded"] == true;
                        }
                        _ => {
                            acked.push((user, aid, false));
                            break;
                        }
                    }
                }
                acked.push((user, aid, converted));
            }
            acked
        }));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    app.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<(String, String, bool)> =
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(acked.len() > 200, "the load actually ran: {}", acked.len());

    // Offline check first (no server): counters equal records.
    let (code, out, err) = app.cli(&["check"], None);
    assert_eq!(code, 0, "check after kill -9: {out} {err}");
    assert!(out.contains("all counters match"), "{out}");

    app.start();
    let mut conversions = 0;
    for (user, aid, converted) in &acked {
        let r = app.assign(&sk, &id, user);
        assert_eq!(r.body["new"], false, "acknowledged assignment of {user} was lost");
        assert_eq!(r.body["assignment_id"].as_str().unwrap(), aid);
        if *converted {
            conversions += 1;
            let c = app.convert(&sk, &id, user);
            assert_eq!(c.body["reason"], "duplicate", "acknowledged conversion of {user} was lost");
        }
    }
    let stats = app
        .get(
            &format!("/api/v1/experiments/{id}"),
            Some(&app.login("a@example.com", "correct horse")),
        )
        .body["stats"]
        .clone();
    assert!(stats["visitors"].as_u64().unwrap() >= acked.len() as u64);
    assert!(stats["conversions"].as_u64().unwrap() >= conversions);
    // And again through the running server's admin socket.
    let (code, out, _) = app.cli(&["check"], None);
    assert_eq!(code, 0, "{out}");
}

/// Flips a byte of an experiment's sealed state in the redb file.
fn tamper_state(dir: &std::path::Path, exp: &str) {
    use redb::ReadableDatabase;
    let db = redb::Database::open(dir.join(samplit::store::DB_FILE)).unwrap();
    let id = uuid::Uuid::parse_str(exp).unwrap().as_u128();
    let mut bytes = {
        let r = db.begin_read().unwrap();
        let t = r.open_table(samplit::store::tables::BANDIT).unwrap();
        t.get(id).unwrap().unwrap().value().to_vec()
    };
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    let w = db.begin_write().unwrap();
    w.open_table(samplit::store::tables::BANDIT).unwrap().insert(id, bytes.as_slice()).unwrap();
    w.commit().unwrap();
}

#[test]
fn tampered_state_is_a_loud_error_and_repair_rebuilds_it() {
    let mut app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("sealed"))["id"].as_str().unwrap().to_string();
    let other = app.running_ab(&t, ab_body("healthy"))["id"].as_str().unwrap().to_string();
    for i in 0..20 {
        app.assign(&sk, &id, &format!("u{i}"));
        if i % 4 == 0 {
            app.convert(&sk, &id, &format!("u{i}"));
        }
    }
    app.stop();
    tamper_state(&app.dir, &id);
    app.start();
    let r = app.assign(&sk, &id, "new-visitor");
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.code(), "STATE_UNREADABLE");
    assert!(r.text.contains(&id), "names the experiment: {}", r.text);
    assert!(r.text.contains("samplit repair"));
    assert_eq!(app.assign(&sk, &other, "v").status, 200, "other experiments keep serving");
    // Existing visitors still get their sticky answer.
    assert_eq!(app.assign(&sk, &id, "u1").body["new"], false);

    let (code, out, err) = app.cli(&["repair", "--experiment", &id], None);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("20 visitors, 5 conversions"), "{out}");
    assert_eq!(app.assign(&sk, &id, "new-visitor").status, 200);
    let (code, out, _) = app.cli(&["check"], None);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn keys_rotate_reencrypts_and_a_wrong_key_is_caught() {
    let mut app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("rot"))["id"].as_str().unwrap().to_string();
    for i in 0..10 {
        app.assign(&sk, &id, &format!("u{i}"));
    }
    let old_key = std::fs::read_to_string(app.dir.join("state.key")).unwrap();
    let (code, out, err) = app.cli(&["keys", "rotate"], None);
    assert_eq!(code, 0, "{out} {err}");
    let new_key = std::fs::read_to_string(app.dir.join("state.key")).unwrap();
    assert_ne!(old_key, new_key);
    app.stop();
    app.start();
    assert_eq!(app.assign(&sk, &id, "u11").status, 200, "state opens under the new key");
    app.stop();
    // A wrong key: every state is unreadable, loudly; repair rebuilds from the records.
    std::fs::write(app.dir.join("state.key"), old_key).unwrap();
    app.start();
    let r = app.assign(&sk, &id, "u12");
    assert_eq!(r.code(), "STATE_UNREADABLE");
    let (code, out, _) = app.cli(&["repair"], None);
    assert_eq!(code, 0);
    assert!(out.contains("11 visitors"), "{out}");
    assert_eq!(app.assign(&sk, &id, "u12").status, 200);
}
