//! Hardening of server-side fetches (issue 11, item 11): webhook URLs whose address is in a
//! special-purpose range (NAT64, 6to4, IPv4-compatible, multicast, benchmarking, ...) are
//! refused unless `webhooks.allow_private`, and nothing is stored.

mod common;

use common::TestApp;
use serde_json::json;

const SPECIAL: [&str; 9] = [
    "http://[64:ff9b::7f00:1]/x",
    "http://[2002:7f00:1::]/",
    "http://[::127.0.0.1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://224.0.0.1/",
    "http://198.18.0.1/",
    "http://100.64.0.1/",
    "http://[fe80::1]/",
    "http://[2001:db8::1]/",
];

#[test]
fn special_purpose_addresses_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    for url in SPECIAL {
        let r = app.post(
            "/api/v1/webhooks",
            Some(&t),
            &json!({"url": url, "events": ["experiment.started"]}),
        );
        assert_eq!(r.status, 422, "{url}: {}", r.text);
        assert_eq!(r.code(), "VALIDATION_FAILED");
        assert_eq!(r.body["error"]["details"]["field"], "url", "{url}");
        let message = r.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("special-purpose"), "{url}: {message}");
    }
    let list = app.get("/api/v1/webhooks", Some(&t));
    assert_eq!(list.status, 200);
    assert_eq!(list.body["total"], 0, "{}", list.text);
}

#[test]
fn allow_private_allows_them_all() {
    let app = TestApp::spawn_with(&[("SAMPLIT_WEBHOOKS__ALLOW_PRIVATE", "true")]);
    let t = app.register("a@example.com");
    for url in SPECIAL {
        let r = app.post(
            "/api/v1/webhooks",
            Some(&t),
            &json!({"url": url, "events": ["experiment.started"]}),
        );
        assert_eq!(r.status, 201, "{url}: {}", r.text);
    }
    assert_eq!(app.get("/api/v1/webhooks", Some(&t)).body["total"], SPECIAL.len());
}

#[test]
fn outbound_allow_private_is_the_same_switch() {
    let app = TestApp::spawn_with(&[("SAMPLIT_OUTBOUND__ALLOW_PRIVATE", "true")]);
    let t = app.register("a@example.com");
    let r = app.post(
        "/api/v1/webhooks",
        Some(&t),
        &json!({"url": "http://127.0.0.1:9/hook", "events": ["experiment.started"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}
