//! Hot backup and restore, against the real binary.

mod common;

use common::{TestApp, ab_body, run_cli};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A backup taken under load starts as a server with everything that was acknowledged
/// before the backup began, and its counters match its records.
#[test]
fn backup_under_load_starts_as_an_identical_server() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("backed up"))["id"].as_str().unwrap().to_string();
    let mut before = Vec::new();
    for i in 0..200 {
        let r = app.assign(&sk, &id, &format!("before-{i}"));
        before.push(r.body["assignment_id"].as_str().unwrap().to_string());
        if i % 4 == 0 {
            app.convert(&sk, &id, &format!("before-{i}"));
        }
    }
    // Keep writing while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let (base, sk2, id2, stop2) = (app.base.clone(), sk.clone(), id.clone(), stop.clone());
    let load = std::thread::spawn(move || {
        let agent = common::agent();
        let mut n = 0;
        while !stop2.load(Ordering::Relaxed) {
            let body =
                json!({"site_key": sk2, "experiment_id": id2, "user_id": format!("during-{n}")});
            let _ = agent
                .post(format!("{base}/api/v1/tracker/assign"))
                .header("content-type", "application/json")
                .send(body.to_string());
            n += 1;
        }
        n
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let out = tempfile::tempdir().unwrap();
    let copy = out.path().join("copy");
    let (code, stdout, err) = app.cli(&["backup", copy.to_str().unwrap()], None);
    stop.store(true, Ordering::Relaxed);
    let during = load.join().unwrap();
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(during > 0);
    assert!(stdout.contains("backup written"), "{stdout}");
    assert!(copy.join("state.key").exists() && copy.join("jwt.key").exists());
    // A second backup into the same place is refused.
    let (code, _, err) = app.cli(&["backup", copy.to_str().unwrap()], None);
    assert_ne!(code, 0, "{err}");

    // The copy checks out and serves, while the original keeps running.
    let (code, stdout, _) = run_cli(&["check"], &copy, None, &[]);
    assert_eq!(code, 0, "{stdout}");
    let mut second = TestApp::spawn();
    second.stop();
    std::fs::remove_dir_all(&second.dir).ok();
    std::fs::rename(&copy, &second.dir).unwrap();
    second.start();
    let t2 = second.login("a@example.com", "correct horse");
    let e = second.get(&format!("/api/v1/experiments/{id}"), Some(&t2)).body;
    assert_eq!(e["status"], "running");
    assert!(e["stats"]["visitors"].as_u64().unwrap() >= 200);
    assert_eq!(e["stats"]["conversions"], 50);
    for (i, aid) in before.iter().enumerate() {
        let r = second.assign(&sk, &id, &format!("before-{i}"));
        assert_eq!(r.body["new"], false);
        assert_eq!(r.body["assignment_id"].as_str().unwrap(), aid);
    }
}

#[test]
fn restore_refuses_a_data_dir_in_use_and_restores_into_a_free_one() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    app.running_ab(&t, ab_body("restored"));
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("bk");
    let (code, _, err) = app.cli(&["backup", copy.to_str().unwrap(), "--without-secrets"], None);
    assert_eq!(code, 0, "{err}");
    assert!(!copy.join("state.key").exists(), "--without-secrets leaves them out");
    let (code, _, err) = app.cli(&["restore", copy.to_str().unwrap()], None);
    assert_ne!(code, 0);
    assert!(err.contains("running"), "{err}");

    let target = tmp.path().join("fresh");
    let (code, out, err) = run_cli(&["restore", copy.to_str().unwrap()], &target, None, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run_cli(&["restore", copy.to_str().unwrap()], &target, None, &[]);
    assert_ne!(code, 0, "an existing data file is not overwritten without --force");
    assert!(err.contains("--force"), "{err}");
    let (code, _, err) =
        run_cli(&["restore", copy.to_str().unwrap(), "--force"], &target, None, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(target.join("samplit.redb.before-restore").exists());
    // Without the secrets the restored dir still holds the data (the secrets are new).
    let (code, out, _) = run_cli(&["experiment", "list"], &target, None, &[]);
    assert_eq!(code, 0);
    assert!(out.contains("restored"), "{out}");
}

#[test]
fn csv_export_has_every_assignment_with_its_conversion() {
    let app = TestApp::spawn_with(&[("SAMPLIT_AUTH__OPEN_REGISTRATION", "true")]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("exported"))["id"].as_str().unwrap().to_string();
    let users: Vec<String> = (0..3000).map(|i| format!("user,{i}")).collect();
    let r = app.post(
        "/api/v1/tracker/assign/batch",
        Some(&t),
        &json!({"site_key": sk, "experiment_id": id, "user_ids": users}),
    );
    assert_eq!(r.status, 200);
    for i in (0..3000).step_by(100) {
        let r = app.post("/api/v1/tracker/convert", None,
            &json!({"site_key": sk, "experiment_id": id, "user_id": format!("user,{i}"), "value": 9.5}));
        assert_eq!(r.body["recorded"], true);
    }
    let csv = app.get(&format!("/api/v1/experiments/{id}/export?format=csv"), Some(&t));
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.header("content-disposition").unwrap().contains("attachment"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 3001, "a header and one row per assignment");
    assert!(lines[0].starts_with("user_id,assignment_id,assigned_at,arm_id,arm,variant:Main"));
    let converted: Vec<&&str> = lines.iter().filter(|l| l.contains(",true,")).collect();
    assert_eq!(converted.len(), 30);
    assert!(converted.iter().all(|l| l.ends_with(",9.5")));
    assert!(lines.iter().any(|l| l.starts_with("\"user,0\",")), "fields with commas are quoted");
    let summary =
        app.get(&format!("/api/v1/experiments/{id}/export?format=csv&part=summary"), Some(&t));
    assert_eq!(summary.status, 200);
    assert_eq!(summary.text.lines().count(), 3);
    assert_eq!(
        app.get(&format!("/api/v1/experiments/{id}/export?format=pdf"), Some(&t)).status,
        422
    );
    let other = app.register("b@example.com");
    assert_eq!(app.get(&format!("/api/v1/experiments/{id}/export"), Some(&other)).status, 404);
}
