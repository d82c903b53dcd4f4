//! The audit trail: every change is an entry of its owner's hash chain, an outsider can
//! recompute the chain from the API, and `samplit audit verify` catches tampering.

mod common;

use common::{TestApp, ab_body};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn entries(app: &TestApp, token: &str, query: &str) -> (Vec<Value>, String) {
    let mut all = Vec::new();
    let mut head;
    loop {
        let r =
            app.get(&format!("/api/v1/audit?limit=500&offset={}{query}", all.len()), Some(token));
        assert_eq!(r.status, 200, "{}", r.text);
        let items = r.body["items"].as_array().unwrap().clone();
        head = r.body["head"].as_str().unwrap().to_string();
        let done = items.is_empty()
            || all.len() + items.len() >= r.body["total"].as_u64().unwrap() as usize;
        all.extend(items);
        if done {
            break;
        }
    }
    (all, head)
}

/// Recomputes a chain the way an outsider would from API.md: SHA-256 over the previous
/// hash and the entry's canonical JSON (every field but `hash`, keys sorted, compact).
fn recompute(chain: &[Value]) -> Result<String, String> {
    let mut prev = "0".repeat(64);
    for e in chain {
        if e["prev_hash"].as_str() != Some(prev.as_str()) {
            return Err(format!("entry {} does not link to the previous hash", e["seq"]));
        }
        let mut body = e.clone();
        body.as_object_mut().unwrap().remove("hash");
        let canonical = serde_json::to_string(&body).unwrap();
        let mut h = Sha256::new();
        h.update(prev.as_bytes());
        h.update(canonical.as_bytes());
        let hash = hex::encode(h.finalize());
        if e["hash"].as_str() != Some(hash.as_str()) {
            return Err(format!("entry {} has a wrong hash", e["seq"]));
        }
        prev = hash;
    }
    Ok(prev)
}

#[test]
fn every_change_is_in_a_chain_an_outsider_can_recompute() {
    let app = TestApp::spawn_with(&[
        ("SAMPLIT_ENGINE__REFRESH_INTERVAL_MS", "20"),
        ("SAMPLIT_AUTH__OPEN_REGISTRATION", "true"),
    ]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let key = app.post("/api/v1/api-keys", Some(&t), &json!({"name": "k"})).body;
    app.delete(&format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap()), Some(&t));
    let e = app.post("/api/v1/experiments", Some(&t), &ab_body("audited")).body;
    let id = e["id"].as_str().unwrap().to_string();
    app.patch(&format!("/api/v1/experiments/{id}"), Some(&t), &json!({"name": "audited!"}));
    app.post(&format!("/api/v1/experiments/{id}/start"), Some(&t), &json!({}));
    for i in 0..60 {
        let r = app.assign(&sk, &id, &format!("u{i}"));
        if r.body["variants"][0]["variant_name"] == "B" {
            app.convert(&sk, &id, &format!("u{i}"));
        }
        if i % 20 == 19 {
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    app.post(&format!("/api/v1/experiments/{id}/pause"), Some(&t), &json!({}));
    app.post(&format!("/api/v1/experiments/{id}/complete"), Some(&t), &json!({}));
    app.delete(&format!("/api/v1/experiments/{id}"), Some(&t));

    let (chain, head) = entries(&app, &t, "");
    let actions: Vec<&str> = chain.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in [
        "user.created",
        "api_key.created",
        "api_key.revoked",
        "experiment.created",
        "experiment.edited",
        "experiment.started",
        "weights.updated",
        "experiment.paused",
        "experiment.completed",
        "experiment.archived",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let w = chain.iter().find(|e| e["action"] == "weights.updated").unwrap();
    assert_eq!(w["experiment_id"], id.as_str());
    assert_eq!(w["data"]["weights"].as_array().unwrap().len(), 2);
    assert!(w["data"]["posterior"][0]["alpha"].is_number());
    assert_eq!(chain[0]["actor"], "a@example.com");
    let seqs: Vec<u64> = chain.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=chain.len() as u64).collect::<Vec<_>>(), "oldest first, no gaps");
    assert_eq!(recompute(&chain).unwrap(), head, "the outsider's recomputation ends at the head");

    let (only, _) = entries(&app, &t, &format!("&experiment_id={id}"));
    assert!(only.iter().all(|e| e["experiment_id"] == id.as_str()));
    assert!(only.len() < chain.len());

    // Another user has a chain of their own and sees nothing of this one.
    let b = app.register("b@example.com");
    let (other, _) = entries(&app, &b, "");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["action"], "user.created");
    assert_eq!(app.get("/api/v1/audit?experiment_id=nope", Some(&b)).status, 422);

    let (code, out, err) = app.cli(&["audit", "verify"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact"), "{out}");
}

#[test]
fn tampering_with_a_stored_entry_is_caught_and_named() {
    use redb::{ReadableDatabase, ReadableTable};
    let mut app = TestApp::spawn();
    let t = app.register("a@example.com");
    for i in 0..3 {
        app.post("/api/v1/experiments", Some(&t), &ab_body(&format!("e{i}")));
    }
    app.stop();
    {
        let db = redb::Database::open(app.dir.join(samplit::store::DB_FILE)).unwrap();
        let (key, mut entry) = {
            let r = db.begin_read().unwrap();
            let table = r.open_table(samplit::store::tables::AUDIT).unwrap();
            let row = table.iter().unwrap().nth(2).unwrap().unwrap();
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
    }
    let (code, _, err) = app.cli(&["audit", "verify"], None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("entry 3") && err.contains("hash"), "names the first broken entry: {err}");
    app.start();
    let t = app.login("a@example.com", "correct horse");
    let (chain, _) = entries(&app, &t, "");
    assert!(recompute(&chain).unwrap_err().contains("entry 3"), "an outsider sees it too");
}
