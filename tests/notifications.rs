//! Email notifications end to end: the real server sends to a real SMTP server (the sink in
//! tests/common/smtp_sink.rs) on loopback.

mod common;

use common::smtp_sink::{Mail, SmtpSink, free_port};
use common::{TestApp, ab_body};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const FROM: &str = "Samplit <samplit@example.com>";

fn env_for(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SAMPLIT_NOTIFICATIONS__SMTP_URL", url.to_string()),
        ("SAMPLIT_NOTIFICATIONS__FROM", FROM.to_string()),
        // Small samples are enough for a winner here.
        ("SAMPLIT_ENGINE__MIN_SAMPLE", "20".to_string()),
        ("SAMPLIT_AUTH__OPEN_REGISTRATION", "true".to_string()),
    ]
}

fn spawn(url: &str) -> TestApp {
    let env = env_for(url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_with(&env)
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running fixed 50/50 test where every visitor of B converts and none of Control do:
/// a clear winner once each arm has its 20 visitors. Answers (experiment id, B's id).
fn winning_experiment(app: &TestApp, token: &str, name: &str) -> (String, String) {
    let mut body = ab_body(name);
    body["allocation"] = json!("fixed");
    let e = app.running_ab(token, body);
    let id = e["id"].as_str().unwrap().to_string();
    let b = e["elements"][0]["variants"][1]["id"].as_str().unwrap().to_string();
    let site = app.site_key(token);
    for i in 0..80 {
        let user = format!("{name}-visitor-{i}");
        let a = app.assign(&site, &id, &user);
        assert_eq!(a.status, 200, "{}", a.text);
        if a.body["variants"][0]["variant_name"] == "B" {
            assert_eq!(app.convert(&site, &id, &user).status, 200);
        }
    }
    (id, b)
}

fn about(mails: &[Mail], what: &str) -> usize {
    mails.iter().filter(|m| m.decoded().contains(what)).count()
}

fn emails(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.get("/api/v1/notifications", Some(token));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["emails"].as_array().unwrap().clone()
}

#[test]
fn the_test_email_arrives_multipart_and_needs_a_reachable_smtp_server() {
    let off = TestApp::spawn();
    let t = off.register("off@example.com");
    let r = off.post("/api/v1/notifications/test", Some(&t), &json!({}));
    assert_eq!((r.status, r.code()), (409, "NOTIFICATIONS_OFF"), "{}", r.text);
    assert!(r.text.contains("notifications.smtp_url"), "{}", r.text);
    assert_eq!(off.get("/api/v1/notifications", Some(&t)).body["smtp_configured"], false);
    drop(off);

    let sink = SmtpSink::start();
    let app = spawn(&sink.url());
    let t = app.register("owner@example.com");
    let st = app.get("/api/v1/notifications", Some(&t));
    assert_eq!(st.body["smtp_configured"], true, "{}", st.text);
    let r = app.post("/api/v1/notifications/test", Some(&t), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"sent": true, "to": "owner@example.com"}));
    let mails = sink.wait_for("owner@example.com", 1, 10);
    let m = &mails[0];
    assert_eq!(m.from, "samplit@example.com");
    assert_eq!(m.header("subject").as_deref(), Some("Samplit test email"));
    assert!(m.header("from").unwrap().contains("samplit@example.com"));
    let text = m.decoded();
    assert!(text.contains("multipart/alternative"), "{text}");
    assert!(text.contains("text/plain") && text.contains("text/html"), "{text}");
    assert!(text.contains("This is the test email you asked for"), "{text}");
    assert!(text.contains(&format!("{}/", app.base)), "links to the dashboard: {text}");
    drop(app);

    // A mail server that is down: a clear bad-gateway answer, not a silent success.
    let down = spawn(&format!("smtp://127.0.0.1:{}", free_port()));
    let t = down.register("owner@example.com");
    let r = down.post("/api/v1/notifications/test", Some(&t), &json!({}));
    assert_eq!((r.status, r.code()), (502, "SMTP_FAILED"), "{}", r.text);
}

#[test]
fn switches_are_validated_shown_and_kept() {
    let sink = SmtpSink::start();
    let app = spawn(&sink.url());
    let t = app.register("owner@example.com");
    let me = app.get("/api/v1/auth/me", Some(&t));
    let all_on = json!({"winner_found": true, "srm_detected": true, "completed": true});
    assert_eq!(me.body["notifications"], all_on, "{}", me.text);
    for (bad, field) in [
        (json!({"notifications": {"winner_found": "no"}}), "notifications.winner_found"),
        (json!({"notifications": {"weekly": false}}), "notifications"),
        (json!({"notifications": false}), "notifications"),
        (json!({"email": "x@example.com"}), "email"),
    ] {
        let r = app.patch("/api/v1/auth/me", Some(&t), &bad);
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        let named = r.body["error"]["details"]["field"].as_str().unwrap_or("");
        assert!(named.contains(field), "{bad}: names {named:?}, {}", r.text);
    }
    assert_eq!(app.get("/api/v1/auth/me", Some(&t)).body["notifications"], all_on, "unchanged");
    let r =
        app.patch("/api/v1/auth/me", Some(&t), &json!({"notifications": {"srm_detected": false}}));
    assert_eq!(r.status, 200, "{}", r.text);
    let want = json!({"winner_found": true, "srm_detected": false, "completed": true});
    assert_eq!(r.body["notifications"], want);
    assert_eq!(r.body["email"], "owner@example.com");
    assert_eq!(app.get("/api/v1/auth/me", Some(&t)).body["notifications"], want);
    assert_eq!(app.get("/api/v1/notifications", Some(&t)).body["preferences"], want);
    let audit = app.get("/api/v1/audit", Some(&t));
    assert!(audit.text.contains("user.notifications_changed"), "{}", audit.text);
}

#[test]
fn a_winner_is_emailed_once_after_the_mail_server_comes_back_across_a_restart() {
    // Nothing listens on this port yet: the mail server is down when the winner is found.
    let port = free_port();
    let mut app = spawn(&format!("smtp://127.0.0.1:{port}"));
    let t = app.register("owner@example.com");
    let (id, _) = winning_experiment(&app, &t, "Hero");
    wait_for("a failed first attempt", 20, || {
        emails(&app, &t).first().is_some_and(|e| {
            e["attempts"].as_u64() >= Some(1)
                && e["state"] == "pending"
                && e["last_error"].is_string()
        })
    });
    let queued = emails(&app, &t);
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["event"], "experiment.winner_found");
    assert_eq!(queued[0]["experiment_id"], id.as_str());

    // kill -9, the mail server comes up, samplit starts again: the pending email goes.
    app.kill9();
    let sink = SmtpSink::start_on(port);
    app.start();
    let mails = sink.wait_for("owner@example.com", 1, 30);
    let text = mails[0].decoded();
    assert!(text.contains("Winner found in \"Hero\": B"), "{text}");
    assert!(text.contains(&format!("/#/experiments/{id}")), "links to the results: {text}");
    assert!(text.contains("probability of being best"), "has the numbers: {text}");
    assert!(text.contains("<table"), "an HTML part with the table: {text}");
    wait_for("the email recorded as sent", 10, || emails(&app, &t)[0]["state"] == "sent");
    // One more pass of the results watcher (every 5 s) finds the winner again: no email.
    std::thread::sleep(Duration::from_millis(5500));
    assert_eq!(about(&sink.mails(), "Winner found"), 1, "{:?}", sink.mails());
    assert_eq!(emails(&app, &t).len(), 1);
}

#[test]
fn opted_out_owners_get_nothing_and_completion_is_emailed() {
    let sink = SmtpSink::start();
    let app = spawn(&sink.url());
    let quiet = app.register("quiet@example.com");
    let loud = app.register("loud@example.com");
    let off = json!({"notifications": {"winner_found": false, "completed": false}});
    let r = app.patch("/api/v1/auth/me", Some(&quiet), &off);
    assert_eq!(r.status, 200, "{}", r.text);

    // The quiet owner's winner is there before the loud one's, so the watcher has seen it
    // by the time the loud owner's email arrives.
    let (quiet_id, quiet_b) = winning_experiment(&app, &quiet, "Quiet");
    let (loud_id, loud_b) = winning_experiment(&app, &loud, "Loud");
    let got = sink.wait_for("loud@example.com", 1, 20);
    assert_eq!(about(&got, "Winner found in \"Loud\": B"), 1, "{got:?}");

    for (t, id, b) in [(&quiet, &quiet_id, &quiet_b), (&loud, &loud_id, &loud_b)] {
        let r = app.post(
            &format!("/api/v1/experiments/{id}/complete"),
            Some(t),
            &json!({"winner_variant_id": b}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let got = sink.wait_for("loud@example.com", 2, 10);
    let done: Vec<&Mail> =
        got.iter().filter(|m| m.decoded().contains("Experiment \"Loud\" completed")).collect();
    assert_eq!(done.len(), 1, "{got:?}");
    let text = done[0].decoded();
    assert!(text.contains("It was completed with B declared the winner."), "{text}");
    assert!(text.contains("visitors"), "{text}");
    assert!(text.contains(&format!("/#/experiments/{loud_id}")), "{text}");

    assert!(sink.mails_to("quiet@example.com").is_empty(), "{:?}", sink.mails());
    assert!(emails(&app, &quiet).is_empty());
    assert_eq!(emails(&app, &loud).len(), 2);
}

#[test]
fn a_bad_smtp_url_stops_the_start_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (url, from, named) in [
        ("http://mail.example.com", FROM, "notifications.smtp_url"),
        ("smtp://mail.example.com:25", "", "notifications.from"),
    ] {
        let out = std::process::Command::new(common::BIN)
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("SAMPLIT_NOTIFICATIONS__SMTP_URL", url)
            .env("SAMPLIT_NOTIFICATIONS__FROM", from)
            .env("SAMPLIT_LOG__LEVEL", "warn")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{url}: {err}");
    }
}

/// The batch endpoint with the owner's token: each user's variant name.
fn batch_variants(app: &TestApp, t: &str, exp: &str, users: &[String]) -> Vec<(String, String)> {
    let site = app.site_key(t);
    let r = app.post(
        "/api/v1/tracker/assign/batch",
        Some(t),
        &json!({"site_key": site, "experiment_id": exp, "user_ids": users}),
    );
    assert_eq!(r.status, 200, "batch assign: {}", r.text);
    r.body["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let user = a["user_id"].as_str().unwrap().to_string();
            (user, a["variants"][0]["variant_name"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn a_sample_ratio_mismatch_is_emailed_once() {
    let sink = SmtpSink::start();
    let app = spawn(&sink.url());
    let t = app.register("owner@example.com");
    // A fixed split buckets by its seed and the visitor alone, so a probe with the same
    // seed tells which visitors the skewed experiment will put where.
    let seed = "notify-srm";
    let fixed = |name: &str| {
        let mut b = ab_body(name);
        b["allocation"] = json!("fixed");
        b["seed"] = json!(seed);
        b
    };
    let probe = app.running_ab(&t, fixed("Probe"));
    let users: Vec<String> = (0..600).map(|i| format!("{seed}-user-{i}")).collect();
    let seen = batch_variants(&app, &t, probe["id"].as_str().unwrap(), &users);
    let in_a: Vec<String> =
        seen.iter().filter(|(_, v)| v == "Control").map(|(u, _)| u.clone()).collect();
    let in_b: Vec<String> = seen.iter().filter(|(_, v)| v == "B").map(|(u, _)| u.clone()).collect();
    assert!(in_a.len() >= 200 && in_b.len() >= 20, "{} / {}", in_a.len(), in_b.len());

    // 200 against 20 on a 50/50 split, as a broken redirect on B would make it.
    let skewed = app.running_ab(&t, fixed("Skewed"));
    let id = skewed["id"].as_str().unwrap();
    let mut sent = in_a[..200].to_vec();
    sent.extend_from_slice(&in_b[..20]);
    for (user, variant) in batch_variants(&app, &t, id, &sent) {
        let want = if in_a.contains(&user) { "Control" } else { "B" };
        assert_eq!(variant, want, "{user} follows the seed's buckets");
    }
    let a = app.get(&format!("/api/v1/analytics/experiments/{id}"), Some(&t)).body;
    assert_eq!(a["srm"]["mismatch"], true, "{}", a["srm"]);

    let got = sink.wait_for("owner@example.com", 1, 20);
    assert_eq!(about(&got, "Sample ratio mismatch in \"Skewed\""), 1, "{got:?}");
    let text = got[0].decoded();
    assert!(text.contains(&format!("/#/experiments/{id}")), "links to the results: {text}");
    // Another pass of the results watcher (every 5 s) sees the same mismatch: no new email.
    std::thread::sleep(Duration::from_millis(5500));
    assert_eq!(about(&sink.mails(), "Sample ratio mismatch"), 1, "{:?}", sink.mails());
    assert_eq!(about(&sink.mails(), "\"Probe\""), 0, "the balanced probe is not flagged");
}
