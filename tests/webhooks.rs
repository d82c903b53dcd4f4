//! Webhooks against a receiver the test runs: signed deliveries, retries with backoff,
//! the delivery log, retries that survive a restart, private addresses refused, and https
//! receivers verified against the built-in roots plus `webhooks.ca_file`.

mod common;

use common::{TestApp, ab_body};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, String, Value)>>>);

/// A tiny HTTP receiver on `listener`: answers 500 to the first `fail_first` requests, then
/// 200, and records (event header, signature header + `|` + body, body as JSON) of each.
fn receiver(listener: std::net::TcpListener, fail_first: usize) -> Received {
    serve_hooks(listener, fail_first, None)
}

/// The same receiver behind TLS with `tls`'s certificate.
fn tls_receiver(listener: std::net::TcpListener, tls: Arc<rustls::ServerConfig>) -> Received {
    serve_hooks(listener, 0, Some(tls))
}

fn serve_hooks(
    listener: std::net::TcpListener,
    fail_first: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Received {
    let got = Received::default();
    let out = got.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let status = if n < fail_first { "500 Internal Server Error" } else { "200 OK" };
            // A failed handshake reads no request and records nothing.
            let got = match &tls {
                None => answer(tcp, status),
                Some(cfg) => {
                    let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                    let mut s = rustls::StreamOwned::new(conn, tcp);
                    let got = answer(&mut s, status);
                    s.conn.send_close_notify();
                    let _ = s.flush();
                    got
                }
            };
            if let Some(g) = got {
                n += 1;
                out.0.lock().unwrap().push(g);
            }
        }
    });
    got
}

/// Reads one request from `s` and answers `status`; None if no request came.
fn answer(mut s: impl Read + Write, status: &str) -> Option<(String, String, Value)> {
    let req = common::http_request::read_request(BufReader::new(&mut s))?;
    let _ = write!(s, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = s.flush();
    let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let signed =
        format!("{}|{}", req.header("x-samplit-signature"), String::from_utf8_lossy(&req.body));
    Some((req.header("x-samplit-event").to_string(), signed, v))
}

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1: the CA as PEM
/// (what `webhooks.ca_file` points at) and the receiver's TLS settings.
fn test_pki() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Samplit test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key.into())
        .unwrap();
    (ca_cert.pem(), Arc::new(tls))
}

fn check_signed(secret: &str, sig_body: &str) -> Value {
    let (sig, body) = sig_body.split_once('|').unwrap();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    assert_eq!(sig, format!("sha256={}", hex::encode(mac.finalize().into_bytes())), "signed");
    serde_json::from_str(body).unwrap()
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
        assert_eq!(&check_signed(&secret, sig_body), v);
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
        "https://[::1]:8443/",
        "https://user@example.com/",
        "http://user:pw@example.com/",
        "example.com/hook",
    ] {
        let r = app.post(
            "/api/v1/webhooks",
            Some(&t),
            &json!({"url": url, "events": ["experiment.started"]}),
        );
        assert_eq!(r.status, 422, "{url}: {}", r.text);
        assert_eq!(r.body["error"]["details"]["field"], "url");
    }
    let message = |url: &str| {
        let r = app.post(
            "/api/v1/webhooks",
            Some(&t),
            &json!({"url": url, "events": ["experiment.started"]}),
        );
        assert_eq!(r.status, 422, "{url}: {}", r.text);
        r.body["error"]["message"].as_str().unwrap_or("").to_string()
    };
    assert!(message("ftp://example.com/").contains("http:// or https://"));
    assert!(message("https://user@example.com/").contains("credentials"));
    assert!(message(&format!("https://example.com/{}", "a".repeat(2100))).contains("2048"));
    assert!(message("https://localhost/").contains("private"));
    assert_eq!(app.get("/api/v1/webhooks", Some(&t)).body["total"], 0);
}

#[test]
fn https_deliveries_trust_the_configured_ca() {
    let (ca_pem, tls) = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let app = TestApp::spawn_with(&[
        ("SAMPLIT_WEBHOOKS__ALLOW_PRIVATE", "true"),
        ("SAMPLIT_WEBHOOKS__CA_FILE", ca_file.to_str().unwrap()),
    ]);
    let t = app.register("a@example.com");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://localhost:{}/hook", listener.local_addr().unwrap().port());
    let got = tls_receiver(listener, tls);
    let r = app.post(
        "/api/v1/webhooks",
        Some(&t),
        &json!({"url": url, "events": ["experiment.started"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let hook = r.body["id"].as_str().unwrap().to_string();

    let e = app.running_ab(&t, ab_body("over tls"));
    wait_for("the https delivery", 20, || !got.0.lock().unwrap().is_empty());
    let (event, sig_body, v) = got.0.lock().unwrap()[0].clone();
    assert_eq!(event, "experiment.started");
    assert_eq!(check_signed(&secret, &sig_body), v);
    assert_eq!(v["experiment_id"], e["id"]);
    wait_for("the delivery log", 10, || {
        let log = app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), Some(&t)).body;
        log["items"][0]["state"] == "delivered"
    });
    let log = app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), Some(&t)).body;
    assert_eq!(log["items"][0]["attempts"][0]["status_code"], 200, "{log}");
}

#[test]
fn https_receivers_an_unknown_ca_signed_are_failed_attempts() {
    let (_, tls) = test_pki();
    // No ca_file: the receiver's certificate chains to nothing Samplit trusts.
    let app = TestApp::spawn_with(&[("SAMPLIT_WEBHOOKS__ALLOW_PRIVATE", "true")]);
    let t = app.register("a@example.com");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://localhost:{}/hook", listener.local_addr().unwrap().port());
    let got = tls_receiver(listener, tls);
    let r = app.post(
        "/api/v1/webhooks",
        Some(&t),
        &json!({"url": url, "events": ["experiment.started"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let hook = r.body["id"].as_str().unwrap().to_string();
    app.running_ab(&t, ab_body("untrusted"));
    let mut log = Value::Null;
    wait_for("two failed attempts", 20, || {
        log = app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), Some(&t)).body;
        log["items"][0]["attempts"].as_array().is_some_and(|a| a.len() >= 2)
    });
    let d = &log["items"][0];
    assert_eq!(d["state"], "pending", "retried like any failure: {log}");
    assert!(d["next_attempt_at"].is_string(), "{log}");
    for a in d["attempts"].as_array().unwrap() {
        assert_eq!(a["status_code"], Value::Null, "{log}");
        let error = a["error"].as_str().unwrap_or("");
        assert!(error.contains("certificate"), "a readable certificate error: {error}");
    }
    assert!(got.0.lock().unwrap().is_empty(), "nothing delivered to an untrusted receiver");
}

/// Runs `samplit serve` expecting it to refuse to start; its stderr.
fn refused_start(dir: &Path, env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env("SAMPLIT_LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("samplit started despite {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_ca_file_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err =
        refused_start(dir.path(), &[("SAMPLIT_WEBHOOKS__CA_FILE", missing.to_str().unwrap())]);
    assert!(err.contains("webhooks.ca_file") && err.contains("missing.pem"), "{err}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let err = refused_start(dir.path(), &[("SAMPLIT_WEBHOOKS__CA_FILE", junk.to_str().unwrap())]);
    assert!(err.contains("junk.pem") && err.contains("no PEM certificate"), "{err}");
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
