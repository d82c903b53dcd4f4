//! Webhooks against a receiver the test runs: signed deliveries, retries with backoff,
//! the delivery log, retries that survive a restart, and private addresses refused.

mod common;

use common::{TestApp, ab_body};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, String, Value)>>>);

/// A tiny HTTP receiver on `listener`: answers 500 to the first `fail_first` requests, then
/// 200, and records (event header, signature header, body) of each.
fn receiver(listener: std::net::TcpListener, fail_first: usize) -> Received {
    let got = Received::default();
    let out = got.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let (mut len, mut event, mut sig) = (0usize, String::new(), String::new());
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                let value =
                    line.split_once(':').map(|(_, v)| v.trim().to_string()).unwrap_or_default();
                if lower.starts_with("content-length:") {
                    len = value.parse().unwrap_or(0);
                } else if lower.starts_with("x-samplit-event:") {
                    event = value;
                } else if lower.starts_with("x-samplit-signature:") {
                    sig = value;
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            n += 1;
            let status = if n <= fail_first { "500 Internal Server Error" } else { "200 OK" };
            let _ =
                write!(s, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            out.0.lock().unwrap().push((
                event,
                format!("{sig}|{}", String::from_utf8_lossy(&body)),
                v,
            ));
        }
    });
    got
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn deliveries_are_signed_retried_and_logged() {
    let app = TestApp::spawn_with(&[("SAMPLIT_WEBHOOKS__ALLOW_PRIVATE", "true")]);
    let t = app.register("a@example.com");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = receiver(listener, 1);
    let r = app.post(
        "/api/v1/webhooks",
        Some(&t),
        &json!({"url": url,
        "events": ["experiment.started", "experiment.paused", "experiment.completed"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let hook = r.body["id"].as_str().unwrap().to_string();
    assert!(!app.get("/api/v1/webhooks", Some(&t)).text.contains(&secret), "secret shown once");

    let e = app.running_ab(&t, ab_body("hooked"));
    let id = e["id"].as_str().unwrap();
    app.post(&format!("/api/v1/experiments/{id}/pause"), Some(&t), &json!({}));
    app.post(&format!("/api/v1/experiments/{id}/complete"), Some(&t), &json!({}));
    // The first attempt gets a 500; the retry (after 1 s) and the others succeed.
    wait_for("three deliveries", 20, || {
        let g = got.0.lock().unwrap();
        ["experiment.started", "experiment.paused", "experiment.completed"]
            .iter()
            .all(|ev| g.iter().skip(1).any(|(e, _, _)| e == ev))
    });
    let g = got.0.lock().unwrap().clone();
    for (event, sig_body, v) in &g {
        let (sig, body) = sig_body.split_once('|').unwrap();
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        assert_eq!(sig, format!("sha256={}", hex::encode(mac.finalize().into_bytes())), "signed");
        assert_eq!(v["event"], event.as_str());
        assert_eq!(v["experiment_id"], id);
        assert!(v["at"].is_string() && v["id"].is_string());
    }
    let log = app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), Some(&t)).body;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|d| d["state"] == "delivered"), "{log}");
    let retried =
        items.iter().find(|d| d["attempts"].as_array().unwrap().len() == 2).expect("one retry");
    assert_eq!(retried["attempts"][0]["status_code"], 500);
    assert_eq!(retried["attempts"][1]["status_code"], 200);

    let other = app.post("/api/v1/webhooks", Some(&t), &json!({"url": url, "events": ["nope"]}));
    assert_eq!(other.body["error"]["details"]["field"], "events[0]");
    assert_eq!(app.delete(&format!("/api/v1/webhooks/{hook}"), Some(&t)).status, 204);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), Some(&t)).status, 404);
}

#[test]
fn private_addresses_are_refused_unless_allowed() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://localhost:8080/",
        "ftp://x/",
        "https://127.0.0.1/",
    ] {
        let r = app.post(
            "/api/v1/webhooks",
            Some(&t),
            &json!({"url": url, "events": ["experiment.started"]}),
        );
        assert_eq!(r.status, 422, "{url}: {}", r.text);
        assert_eq!(r.body["error"]["details"]["field"], "url");
    }
    assert_eq!(app.get("/api/v1/webhooks", Some(&t)).body["total"], 0);
}

#[test]
fn pending_retries_survive_a_restart() {
    let mut app = TestApp::spawn_with(&[("SAMPLIT_WEBHOOKS__ALLOW_PRIVATE", "true")]);
    let t = app.register("a@example.com");
    // A port with nobody listening yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let r = app.post(
        "/api/v1/webhooks",
        Some(&t),
        &json!({"url": url, "events": ["experiment.started"]}),
    );
    let hook = r.body["id"].as_str().unwrap().to_string();
    app.running_ab(&t, ab_body("later"));
    wait_for("a failed attempt", 10, || {
        let log = app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), Some(&t)).body;
        log["items"][0]["attempts"].as_array().is_some_and(|a| !a.is_empty())
    });
    app.stop();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got = receiver(listener, 0);
    app.start();
    wait_for("the resumed delivery", 30, || !got.0.lock().unwrap().is_empty());
    assert_eq!(got.0.lock().unwrap()[0].0, "experiment.started");
}
