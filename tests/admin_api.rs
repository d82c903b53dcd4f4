//! The admin endpoints behind the dashboard's admin pages: the audit chain's verification
//! (and its failure after tampering), a webhook's signed test event arriving at a receiver
//! on 127.0.0.1, an admin's password reset ending the user's sessions, and what a member
//! may not see.

mod common;

use common::{TestApp, ab_body};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Creates a member (password "member pass") as `admin` and logs them in.
fn member(app: &TestApp, admin: &str, email: &str) -> String {
    let r = app.post(
        "/api/v1/users",
        Some(admin),
        &json!({"email": email, "password": "member pass", "role": "member"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    app.login(email, "member pass")
}

#[test]
fn audit_verify_says_verified_until_an_entry_is_tampered_with() {
    let mut app = TestApp::spawn();
    let t = app.register("a@example.com");
    for i in 0..3 {
        assert_eq!(
            app.post("/api/v1/experiments", Some(&t), &ab_body(&format!("e{i}"))).status,
            201
        );
    }
    let b = member(&app, &t, "b@example.com");

    let v = app.get("/api/v1/audit/verify", Some(&t));
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["verified"], true, "{}", v.text);
    assert_eq!(v.body["scope"], "own");
    assert_eq!(v.body["first_broken"], Value::Null);
    let total = app.get("/api/v1/audit", Some(&t)).body["total"].as_u64().unwrap();
    assert_eq!(v.body["entries"].as_u64(), Some(total), "every entry of the chain checked");
    let all = app.get("/api/v1/audit/verify?scope=all", Some(&t));
    assert_eq!(all.body["verified"], true, "{}", all.text);
    assert!(all.body["entries"].as_u64().unwrap() > total, "both chains: {}", all.text);
    assert_eq!(
        app.get("/api/v1/audit/verify?scope=mine", Some(&t)).body["error"]["details"]["field"],
        "scope"
    );
    // A member verifies their own chain only.
    let mv = app.get("/api/v1/audit/verify", Some(&b));
    assert_eq!(mv.body["verified"], true, "{}", mv.text);
    assert_eq!(mv.body["entries"], app.get("/api/v1/audit", Some(&b)).body["total"]);
    assert_eq!(app.get("/api/v1/audit/verify?scope=all", Some(&b)).status, 403);
    assert_eq!(app.get("/api/v1/audit/verify", None).status, 401);

    // Tamper with the admin's third entry while the server is stopped, with the library.
    app.stop();
    let owner = {
        use redb::{ReadableDatabase, ReadableTable};
        let db = redb::Database::open(app.dir.join(samplit::store::DB_FILE)).unwrap();
        let (key, mut entry) = {
            let r = db.begin_read().unwrap();
            let table = r.open_table(samplit::store::tables::AUDIT).unwrap();
            let row = table
                .iter()
                .unwrap()
                .map(|r| r.unwrap())
                .find(|(_, v)| {
                    let e: Value = serde_json::from_slice(v.value()).unwrap();
                    e["seq"] == 3 && e["actor"] == "a@example.com"
                })
                .expect("the admin's third entry");
            let e: Value = serde_json::from_slice(row.1.value()).unwrap();
            (row.0.value(), e)
        };
        entry["actor"] = json!("mallory@example.com");
        let w = db.begin_write().unwrap();
        w.open_table(samplit::store::tables::AUDIT)
            .unwrap()
            .insert(key, entry.to_string().as_bytes())
            .unwrap();
        w.commit().unwrap();
        uuid::Uuid::from_u128(key.0)
    };
    app.start();
    let t = app.login("a@example.com", "correct horse");
    let v = app.get("/api/v1/audit/verify", Some(&t));
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["verified"], false, "{}", v.text);
    assert_eq!(v.body["first_broken"]["seq"], 3, "{}", v.text);
    assert_eq!(v.body["first_broken"]["owner"], json!(owner));
    assert!(v.body["first_broken"]["reason"].as_str().unwrap().contains("hash"), "{}", v.text);
    // The member's chain is untouched and still verifies.
    let b = app.login("b@example.com", "member pass");
    assert_eq!(app.get("/api/v1/audit/verify", Some(&b)).body["verified"], true);
    let all = app.get("/api/v1/audit/verify?scope=all", Some(&t));
    assert_eq!(all.body["verified"], false);
    assert_eq!(all.body["broken"].as_array().unwrap().len(), 1, "{}", all.text);
}

#[test]
fn a_webhook_test_event_arrives_signed() {
    let app = TestApp::spawn_with(&[("SAMPLIT_OUTBOUND__ALLOW_PRIVATE", "true")]);
    let t = app.register("a@example.com");
    let (url, got) = common::http_request::receiver();
    let h = app.post(
        "/api/v1/webhooks",
        Some(&t),
        &json!({"url": url, "events": ["experiment.completed"]}),
    );
    assert_eq!(h.status, 201, "{}", h.text);
    let id = h.body["id"].as_str().unwrap().to_string();
    let secret = h.body["secret"].as_str().unwrap().to_string();

    let r = app.post(&format!("/api/v1/webhooks/{id}/test"), Some(&t), &json!({}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["event"], "webhook.test");
    let delivery = r.body["id"].as_str().unwrap().to_string();

    let req = got.recv_timeout(Duration::from_secs(20)).expect("the test event arrives");
    assert_eq!(req.header("x-samplit-event"), "webhook.test");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&req.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(req.header("x-samplit-signature"), want, "signed with the webhook's secret");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["event"], "webhook.test");
    assert_eq!(body["id"], delivery.as_str());
    assert_eq!(body["experiment_id"], Value::Null);
    assert_eq!(body["data"]["webhook_id"], id.as_str());

    // The delivery log shows it delivered.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = app.get(&format!("/api/v1/webhooks/{id}/deliveries"), Some(&t));
        let d = log.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == delivery.as_str())
            .cloned();
        if d.as_ref().is_some_and(|d| d["state"] == "delivered") {
            assert_eq!(d.unwrap()["attempts"][0]["status_code"], 200);
            break;
        }
        assert!(Instant::now() < deadline, "never marked delivered: {}", log.text);
        std::thread::sleep(Duration::from_millis(50));
    }

    // Another account's webhook, or none at all: 404, and nothing queued.
    let other = member(&app, &t, "b@example.com");
    let r = app.post(&format!("/api/v1/webhooks/{id}/test"), Some(&other), &json!({}));
    assert_eq!(r.status, 404, "{}", r.text);
    let r = app.post("/api/v1/webhooks/not-a-uuid/test", Some(&t), &json!({}));
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(app.post(&format!("/api/v1/webhooks/{id}/test"), None, &json!({})).status, 401);
    let log = app.get(&format!("/api/v1/webhooks/{id}/deliveries"), Some(&t));
    assert_eq!(log.body["total"], 1, "{}", log.text);
}

#[test]
fn an_admin_password_reset_ends_the_users_sessions() {
    let app = TestApp::spawn();
    let admin = app.register("a@example.com");
    let member = member(&app, &admin, "b@example.com");
    let uid = app.get("/api/v1/auth/me", Some(&member)).body["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/users/{uid}/password");

    // Bad input changes nothing.
    let short = app.post(&path, Some(&admin), &json!({"password": "short"}));
    assert_eq!(short.status, 422, "{}", short.text);
    assert_eq!(short.body["error"]["details"]["field"], "password");
    let extra = app.post(&path, Some(&admin), &json!({"password": "long enough", "x": 1}));
    assert_eq!(extra.status, 422, "{}", extra.text);
    let missing = app.post(
        &format!("/api/v1/users/{}/password", uuid::Uuid::new_v4()),
        Some(&admin),
        &json!({"password": "long enough"}),
    );
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert_eq!(app.get("/api/v1/auth/me", Some(&member)).status, 200, "still signed in");

    // A member may not reset anyone's password, their own included.
    let r = app.post(&path, Some(&member), &json!({"password": "member chose"}));
    assert_eq!(r.status, 403, "{}", r.text);

    let r = app.post(&path, Some(&admin), &json!({"password": "new secret pass"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["email"], "b@example.com");
    assert_eq!(app.get("/api/v1/auth/me", Some(&member)).status, 401, "the old token stops");
    let old = app.post(
        "/api/v1/auth/token",
        None,
        &json!({"email": "b@example.com", "password": "member pass"}),
    );
    assert_eq!(old.status, 401, "the old password stops");
    let fresh = app.login("b@example.com", "new secret pass");
    assert_eq!(app.get("/api/v1/auth/me", Some(&fresh)).status, 200);
    assert_eq!(app.get("/api/v1/auth/me", Some(&admin)).status, 200, "the admin stays in");
    let audit = app.get("/api/v1/audit?limit=500", Some(&fresh)).body;
    let last = audit["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "user.password_changed");
    assert_eq!(last["actor"], "a@example.com");
}

#[test]
fn a_member_gets_403_on_users_and_sees_only_their_own_audit_and_webhooks() {
    let app = TestApp::spawn_with(&[("SAMPLIT_OUTBOUND__ALLOW_PRIVATE", "true")]);
    let admin = app.register("a@example.com");
    let member = member(&app, &admin, "b@example.com");
    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["experiment.started"]});
    assert_eq!(app.post("/api/v1/webhooks", Some(&admin), &hook).status, 201);
    app.post("/api/v1/experiments", Some(&admin), &ab_body("admin's"));

    let uid = app.get("/api/v1/auth/me", Some(&admin)).body["id"].as_str().unwrap().to_string();
    assert_eq!(app.get("/api/v1/users", Some(&member)).status, 403);
    let new = json!({"email": "c@example.com", "password": "long enough"});
    assert_eq!(app.post("/api/v1/users", Some(&member), &new).status, 403);
    assert_eq!(
        app.patch(&format!("/api/v1/users/{uid}"), Some(&member), &json!({"role": "member"}))
            .status,
        403
    );
    assert_eq!(app.delete(&format!("/api/v1/users/{uid}"), Some(&member)).status, 403);
    let pw = json!({"password": "long enough"});
    assert_eq!(app.post(&format!("/api/v1/users/{uid}/password"), Some(&member), &pw).status, 403);

    let audit = app.get("/api/v1/audit?limit=500", Some(&member)).body;
    let items = audit["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items.iter().all(|e| e["action"] != "experiment.created"),
        "nothing of the admin's chain: {audit}"
    );
    assert_eq!(app.get("/api/v1/webhooks", Some(&member)).body["total"], 0);
    let admins = app.get("/api/v1/audit?limit=500", Some(&admin)).body;
    assert!(
        admins["items"].as_array().unwrap().iter().any(|e| e["action"] == "experiment.created")
    );
}
