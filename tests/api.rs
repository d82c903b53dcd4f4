//! End-to-end tests of the management API and the HTTP layer, against the real binary.

mod common;

use common::{TestApp, ab_body};
use serde_json::{Value, json};

#[test]
fn first_user_is_admin_then_registration_closes() {
    let app = TestApp::spawn();
    let st = app.get("/api/v1/auth/status", None);
    assert_eq!(st.body["has_users"], false);
    let r = app.post(
        "/api/v1/auth/register",
        None,
        &json!({"email": "Admin@Example.com", "password": "correct horse", "name": "Ana"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["role"], "admin");
    assert_eq!(r.body["email"], "admin@example.com");
    assert!(r.body.get("password_hash").is_none(), "never returns secrets");
    let r = app.post(
        "/api/v1/auth/register",
        None,
        &json!({"email": "b@example.com", "password": "correct horse"}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "REGISTRATION_CLOSED");
    assert_eq!(app.get("/api/v1/auth/status", None).body["has_users"], true);
}

#[test]
fn open_registration_and_validation() {
    let app = TestApp::spawn_with(&[("SAMPLIT_AUTH__OPEN_REGISTRATION", "true")]);
    app.register("a@example.com");
    let r = app.post(
        "/api/v1/auth/register",
        None,
        &json!({"email": "b@example.com", "password": "correct horse"}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.body["role"], "member");
    let r = app.post(
        "/api/v1/auth/register",
        None,
        &json!({"email": "b@example.com", "password": "correct horse"}),
    );
    assert_eq!((r.status, r.code()), (409, "EMAIL_TAKEN"));
    let r = app.post(
        "/api/v1/auth/register",
        None,
        &json!({"email": "c@example.com", "password": "short"}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["details"]["field"], "password");
    let r = app.post(
        "/api/v1/auth/register",
        None,
        &json!({"email": "not-an-email", "password": "correct horse"}),
    );
    assert_eq!(r.body["error"]["details"]["field"], "email");
    let r = app.post("/api/v1/auth/register", None, &json!({"password": "correct horse"}));
    assert_eq!(r.status, 422, "missing field: {}", r.text);
}

#[test]
fn token_json_and_form_me_and_wrong_credentials() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let me = app.get("/api/v1/auth/me", Some(&t));
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], "a@example.com");
    assert!(me.body["site_key"].as_str().unwrap().starts_with("site_"));
    let form = app.send(
        "POST",
        "/api/v1/auth/token",
        None,
        "application/x-www-form-urlencoded",
        b"username=a%40example.com&password=correct+horse",
    );
    assert_eq!(form.status, 200, "{}", form.text);
    assert_eq!(form.body["token_type"], "bearer");
    assert!(form.body["expires_in"].as_u64().unwrap() > 0);
    let bad = app.post(
        "/api/v1/auth/token",
        None,
        &json!({"email": "a@example.com", "password": "wrong password"}),
    );
    assert_eq!((bad.status, bad.code()), (401, "INVALID_CREDENTIALS"));
    let nobody = app.post(
        "/api/v1/auth/token",
        None,
        &json!({"email": "x@example.com", "password": "wrong password"}),
    );
    assert_eq!(nobody.status, 401);
    assert_eq!(app.get("/api/v1/auth/me", None).status, 401);
    assert_eq!(app.get("/api/v1/auth/me", Some("garbage")).status, 401);
    let tampered = format!("{}x", t);
    assert_eq!(app.get("/api/v1/auth/me", Some(&tampered)).status, 401);
}

#[test]
fn expired_tokens_are_refused() {
    let app = TestApp::spawn_with(&[("SAMPLIT_AUTH__TOKEN_TTL_SECS", "0")]);
    let t = app.register("a@example.com");
    std::thread::sleep(std::time::Duration::from_secs(7));
    assert_eq!(app.get("/api/v1/auth/me", Some(&t)).status, 401);
}

#[test]
fn admin_creates_users_members_cannot() {
    let app = TestApp::spawn();
    let admin = app.register("admin@example.com");
    let r = app.post(
        "/api/v1/users",
        Some(&admin),
        &json!({"email": "m@example.com", "password": "member pass", "role": "member"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let member = app.login("m@example.com", "member pass");
    let r = app.post(
        "/api/v1/users",
        Some(&member),
        &json!({"email": "x@example.com", "password": "member pass"}),
    );
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
    assert_eq!(app.get("/api/v1/users", Some(&member)).status, 403);
    let list = app.get("/api/v1/users", Some(&admin));
    assert_eq!(list.body["total"], 2);
    assert!(!list.text.contains("password"), "no secrets in the list");
    let r = app.post(
        "/api/v1/users",
        Some(&admin),
        &json!({"email": "y@example.com", "password": "member pass", "role": "root"}),
    );
    assert_eq!(r.body["error"]["details"]["field"], "role");
}

#[test]
fn api_keys_are_shown_once_work_and_revoke() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let r = app.post("/api/v1/api-keys", Some(&t), &json!({"name": "ci"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(app.get("/api/v1/auth/me", Some(&key)).body["email"], "a@example.com");
    let list = app.get("/api/v1/api-keys", Some(&t));
    assert_eq!(list.body["items"][0]["name"], "ci");
    assert!(!list.text.contains(&key), "the key is never shown again");
    assert!(list.body["items"][0]["last_used_at"].is_string());
    assert_eq!(app.post("/api/v1/api-keys", Some(&t), &json!({"name": ""})).status, 422);
    // Another user cannot revoke it.
    let admin_t = t.clone();
    let r = app.post(
        "/api/v1/users",
        Some(&admin_t),
        &json!({"email": "b@example.com", "password": "other pass"}),
    );
    assert_eq!(r.status, 201);
    let other = app.login("b@example.com", "other pass");
    assert_eq!(app.delete(&format!("/api/v1/api-keys/{id}"), Some(&other)).status, 404);
    assert_eq!(app.delete(&format!("/api/v1/api-keys/{id}"), Some(&t)).status, 204);
    assert_eq!(app.get("/api/v1/auth/me", Some(&key)).status, 401);
    assert_eq!(app.delete(&format!("/api/v1/api-keys/{id}"), Some(&t)).status, 404);
}

#[test]
fn installation_snippet_points_at_the_site_script() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let r = app.get("/api/v1/installations", Some(&t));
    let key = app.site_key(&t);
    assert_eq!(r.body["site_key"], key.as_str());
    let snippet = r.body["snippet"].as_str().unwrap();
    assert_eq!(snippet, format!("<script src=\"{}/t/{key}.js\"></script>", app.base));
    let js = app.get(&format!("/t/{key}.js"), None);
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").unwrap().contains("javascript"));
    assert!(js.text.starts_with("window.__samplit="));
    assert_eq!(app.get("/t/site_nope.js", None).status, 404);
}

fn create(app: &TestApp, t: &str, body: Value) -> common::Res {
    app.post("/api/v1/experiments", Some(t), &body)
}

#[test]
fn create_ab_and_multi_element_experiments() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let r = create(&app, &t, ab_body("Hero"));
    assert_eq!(r.status, 201, "{}", r.text);
    let e = &r.body;
    assert_eq!(e["status"], "draft");
    assert_eq!(e["type"], "ab_test");
    assert_eq!(e["allocation"], "adaptive");
    assert_eq!(e["seed"], e["id"], "seed defaults to the id");
    assert_eq!(e["elements"][0]["selector"], "#cta");
    assert_eq!(e["elements"][0]["variants"][0]["weight"], 0.5);
    assert_eq!(e["elements"][0]["variants"][1]["content"]["text"], "Get yours");
    for k in ["created_at", "updated_at"] {
        assert!(e[k].as_str().unwrap().ends_with('Z'), "{k} is RFC 3339 UTC");
    }
    assert!(e["started_at"].is_null());

    let m = create(
        &app,
        &t,
        json!({
            "name": "Factorial", "type": "multi_element", "allocation": "fixed", "seed": "my-seed",
            "elements": [
                {"name": "CTA", "selector": "#cta", "variants": [{"name": "A"}, {"name": "B", "weight": 3}]},
                {"name": "Copy", "selector": "h1", "variants": [{"name": "X"}, {"name": "Y"}, {"name": "Z"}]}
            ]
        }),
    );
    assert_eq!(m.status, 201, "{}", m.text);
    assert_eq!(m.body["seed"], "my-seed");
    assert_eq!(m.body["elements"][0]["variants"][1]["weight"], 0.75);
    let id = m.body["id"].as_str().unwrap();
    let got = app.get(&format!("/api/v1/experiments/{id}"), Some(&t));
    assert_eq!(got.status, 200);
    assert_eq!(got.body["stats"]["combinations"].as_array().unwrap().len(), 6);
    assert_eq!(got.body["stats"]["visitors"], 0);
}

#[test]
fn validation_names_the_field_and_changes_nothing() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"variants": [{"name": "A"}, {"name": "B"}]}), "name"),
        (json!({"name": "", "variants": [{"name": "A"}, {"name": "B"}]}), "name"),
        (json!({"name": "x".repeat(201), "variants": [{"name": "A"}, {"name": "B"}]}), "name"),
        (json!({"name": "n", "variants": [{"name": "A"}]}), "variants"),
        (
            json!({"name": "n", "variants": (0..21).map(|i| json!({"name": format!("v{i}")})).collect::<Vec<_>>()}),
            "variants",
        ),
        (
            json!({"name": "n", "variants": [{"name": "A"}, {"name": "B", "weight": 0}]}),
            "variants[1].weight",
        ),
        (
            json!({"name": "n", "traffic_allocation": 0, "variants": [{"name": "A"}, {"name": "B"}]}),
            "traffic_allocation",
        ),
        (
            json!({"name": "n", "traffic_allocation": 1.01, "variants": [{"name": "A"}, {"name": "B"}]}),
            "traffic_allocation",
        ),
        (json!({"name": "n", "variants": [{"name": "A"}, {"name": ""}]}), "variants[1].name"),
        (
            json!({"name": "n", "type": "multi_element", "elements": (0..9).map(|i| json!({"name": format!("e{i}"), "variants": [{"name": "a"}, {"name": "b"}]})).collect::<Vec<_>>()}),
            "elements",
        ),
        (
            json!({"name": "n", "type": "multi_element", "elements": (0..5).map(|i| json!({"name": format!("e{i}"), "variants": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]})).collect::<Vec<_>>()}),
            "elements",
        ),
        (json!({"name": "n", "type": "bogus", "variants": [{"name": "A"}, {"name": "B"}]}), "type"),
        (
            json!({"name": "n", "variants": [{"name": "A", "content": {"colour": "red"}}, {"name": "B"}]}),
            "variants[0].content",
        ),
        (
            json!({"name": "n", "goal": {"type": "click"}, "variants": [{"name": "A"}, {"name": "B"}]}),
            "goal",
        ),
        (
            json!({"name": "n", "unknown_field": 1, "variants": [{"name": "A"}, {"name": "B"}]}),
            "unknown_field",
        ),
    ];
    for (body, field) in cases {
        let r = create(&app, &t, body.clone());
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.code(), "VALIDATION_FAILED");
        let got = r.body["error"]["details"]["field"].as_str().unwrap_or("");
        assert!(
            got.starts_with(field) || got.contains(field),
            "{body}: expected field {field}, got {got}"
        );
    }
    assert_eq!(app.get("/api/v1/experiments", Some(&t)).body["total"], 0, "nothing was created");
}

#[test]
fn list_filters_and_paginates() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    for i in 0..5 {
        assert_eq!(create(&app, &t, ab_body(&format!("e{i}"))).status, 201);
    }
    let all = app.get("/api/v1/experiments", Some(&t));
    assert_eq!(all.body["total"], 5);
    let first = all.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.post(&format!("/api/v1/experiments/{first}/start"), Some(&t), &json!({})).status,
        200
    );
    let running = app.get("/api/v1/experiments?status=running", Some(&t));
    assert_eq!(running.body["total"], 1);
    assert_eq!(running.body["items"][0]["id"], first.as_str());
    assert!(running.body["items"][0]["summary"]["visitors"].is_number());
    let page = app.get("/api/v1/experiments?limit=2&offset=4", Some(&t));
    assert_eq!(page.body["total"], 5);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/v1/experiments?limit=501", Some(&t)).status, 422);
    assert_eq!(app.get("/api/v1/experiments?limit=abc", Some(&t)).status, 422);
    assert_eq!(app.get("/api/v1/experiments?status=bogus", Some(&t)).status, 422);
    let r = app.get("/api/v1/experiments?limit=1&limit=2", Some(&t));
    assert!(r.status == 400 || r.status == 422, "{}", r.text);
    assert!(!r.code().is_empty(), "framework rejections keep the error format: {}", r.text);
}

#[test]
fn patch_only_structure_of_drafts() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let id = create(&app, &t, ab_body("e")).body["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/experiments/{id}");
    let r = app.patch(
        &path,
        Some(&t),
        &json!({"name": "renamed", "variants": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "renamed");
    assert_eq!(r.body["elements"][0]["variants"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["elements"][0]["selector"], "#cta", "selector kept");
    let r = app.patch(&path, Some(&t), &json!({"traffic_allocation": 7}));
    assert_eq!(r.status, 422);
    assert_eq!(
        app.get(&path, Some(&t)).body["traffic_allocation"],
        1.0,
        "a failed patch changes nothing"
    );
    app.post(&format!("{path}/start"), Some(&t), &json!({}));
    let r = app.patch(&path, Some(&t), &json!({"variants": [{"name": "A"}, {"name": "B"}]}));
    assert_eq!((r.status, r.code()), (409, "EXP_NOT_DRAFT"));
    let r = app.patch(&path, Some(&t), &json!({"description": "still editable"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["description"], "still editable");
}

#[test]
fn lifecycle_transitions_and_conflicts() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let e = create(&app, &t, ab_body("e")).body;
    let id = e["id"].as_str().unwrap();
    let variant = e["elements"][0]["variants"][1]["id"].as_str().unwrap();
    let p = |a: &str| format!("/api/v1/experiments/{id}/{a}");
    let r = app.post(&p("pause"), Some(&t), &json!({}));
    assert_eq!((r.status, r.code()), (409, "INVALID_TRANSITION"));
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains("draft"),
        "names the current status"
    );
    assert_eq!(app.post(&p("start"), Some(&t), &json!({})).body["status"], "running");
    assert!(app.get(&format!("/api/v1/experiments/{id}"), Some(&t)).body["started_at"].is_string());
    assert_eq!(app.post(&p("start"), Some(&t), &json!({})).status, 409);
    assert_eq!(app.post(&p("pause"), Some(&t), &json!({})).body["status"], "paused");
    assert_eq!(app.post(&p("resume"), Some(&t), &json!({})).body["status"], "running");
    let bad = app.post(
        &p("complete"),
        Some(&t),
        &json!({"winner_variant_id": "00000000-0000-0000-0000-000000000000"}),
    );
    assert_eq!(bad.status, 422);
    let done = app.post(&p("complete"), Some(&t), &json!({"winner_variant_id": variant}));
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["status"], "completed");
    assert_eq!(done.body["winner_variant_id"], variant);
    assert_eq!(app.post(&p("resume"), Some(&t), &json!({})).status, 409);
    // complete without a body works too
    let e2 = app.running_ab(&t, ab_body("e2"));
    let id2 = e2["id"].as_str().unwrap();
    let r = app.send(
        "POST",
        &format!("/api/v1/experiments/{id2}/complete"),
        Some(&t),
        "application/json",
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn archive_and_hard_delete() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let draft = create(&app, &t, ab_body("draft")).body["id"].as_str().unwrap().to_string();
    let running = app.running_ab(&t, ab_body("run"))["id"].as_str().unwrap().to_string();
    let r = app.delete(&format!("/api/v1/experiments/{running}?hard=true"), Some(&t));
    assert_eq!((r.status, r.code()), (409, "EXP_NOT_DRAFT"));
    assert_eq!(app.delete(&format!("/api/v1/experiments/{running}"), Some(&t)).status, 204);
    let list = app.get("/api/v1/experiments", Some(&t));
    assert_eq!(list.body["total"], 1, "archived ones leave the default list");
    assert_eq!(app.get("/api/v1/experiments?status=archived", Some(&t)).body["total"], 1);
    assert!(
        app.get(&format!("/api/v1/experiments/{running}"), Some(&t)).body["archived_at"]
            .is_string()
    );
    assert_eq!(app.delete(&format!("/api/v1/experiments/{draft}?hard=true"), Some(&t)).status, 204);
    assert_eq!(app.get(&format!("/api/v1/experiments/{draft}"), Some(&t)).status, 404);
    assert_eq!(
        app.delete(&format!("/api/v1/experiments/{draft}?hard=maybe"), Some(&t)).status,
        422
    );
}

#[test]
fn another_users_experiment_is_404_everywhere() {
    let app = TestApp::spawn_with(&[("SAMPLIT_AUTH__OPEN_REGISTRATION", "true")]);
    let a = app.register("a@example.com");
    let b = app.register("b@example.com");
    let e = app.running_ab(&a, ab_body("mine"));
    let id = e["id"].as_str().unwrap();
    let paths = [
        ("GET", format!("/api/v1/experiments/{id}")),
        ("PATCH", format!("/api/v1/experiments/{id}")),
        ("DELETE", format!("/api/v1/experiments/{id}")),
        ("POST", format!("/api/v1/experiments/{id}/pause")),
        ("POST", format!("/api/v1/experiments/{id}/complete")),
        ("GET", format!("/api/v1/analytics/experiments/{id}")),
        ("GET", format!("/api/v1/analytics/experiments/{id}/timeseries")),
    ];
    for (m, p) in &paths {
        let r = match *m {
            "GET" => app.get(p, Some(&b)),
            "DELETE" => app.delete(p, Some(&b)),
            "PATCH" => app.patch(p, Some(&b), &json!({"name": "stolen"})),
            _ => app.post(p, Some(&b), &json!({})),
        };
        assert_eq!(r.status, 404, "{m} {p}: {}", r.text);
        assert!(!r.text.contains("mine"), "no data leaks");
    }
    assert_eq!(app.get("/api/v1/experiments", Some(&b)).body["total"], 0);
    // Tracker: b's site key cannot reach a's experiment.
    let r = app.assign(&app.site_key(&b), id, "u1");
    assert_eq!(r.status, 404);
    assert_eq!(
        app.get(&format!("/api/v1/experiments/{id}"), Some(&a)).body["status"],
        "running",
        "unchanged"
    );
}

#[test]
fn http_errors_follow_the_contract() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let r = app.send("POST", "/api/v1/experiments", Some(&t), "application/json", b"{not json");
    assert_eq!((r.status, r.code()), (400, "BAD_JSON"));
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let r = app.send("POST", "/api/v1/experiments", Some(&t), "text/plain", b"{}");
    assert_eq!((r.status, r.code()), (415, "UNSUPPORTED_MEDIA_TYPE"));
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = app.send("POST", "/api/v1/experiments", Some(&t), "application/json", big.as_bytes());
    assert_eq!((r.status, r.code()), (413, "PAYLOAD_TOO_LARGE"));
    let r = app.get("/api/v1/nope", Some(&t));
    assert_eq!((r.status, r.code()), (404, "ROUTE_NOT_FOUND"));
    let r = app.get("/api/v1/experiments/not-a-uuid", Some(&t));
    assert_eq!((r.status, r.code()), (404, "EXP_NOT_FOUND"));
    let r = app.send("PUT", "/api/v1/experiments", Some(&t), "application/json", b"{}");
    assert_eq!(r.status, 405);
    assert_eq!(r.code(), "METHOD_NOT_ALLOWED");
    let r = app.send("POST", "/api/v1/experiments", Some(&t), "application/json", b"[1,2]");
    assert_eq!(r.status, 422);
    assert_eq!(app.get("/api/v1/experiments", Some(&t)).body["total"], 0);
}

#[test]
fn headers_cors_gzip_and_ops_endpoints() {
    let app = TestApp::spawn();
    let h = app.get("/health", None);
    assert_eq!(h.body["status"], "ok");
    assert!(h.header("x-request-id").is_some());
    assert!(h.header("server-timing").unwrap().starts_with("app;dur="));
    assert_eq!(h.header("x-content-type-options"), Some("nosniff"));
    let mine = app.get_h("/health", &[("x-request-id", "abc-123")]);
    assert_eq!(mine.header("x-request-id"), Some("abc-123"));
    assert_eq!(app.get("/ready", None).status, 200);
    let m = app.get("/metrics", None);
    assert!(m.text.contains("samplit_http_requests_total"));
    // CORS on tracker endpoints for any origin
    let pre = common::agent()
        .run(
            ureq::http::Request::builder()
                .method("OPTIONS")
                .uri(app.url("/api/v1/tracker/assign"))
                .header("origin", "https://shop.example")
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .body(())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(pre.headers().get("access-control-allow-origin").unwrap(), "*");
    // gzip
    let index = app.get_h("/", &[("accept-encoding", "gzip")]);
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-encoding"), Some("gzip"));
    let page = app.get("/", None);
    assert!(page.header("content-security-policy").unwrap().contains("script-src 'self'"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
}

#[test]
fn openapi_documents_every_route_the_router_serves() {
    let app = TestApp::spawn();
    let doc = app.get("/api/v1/openapi.json", None);
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 20);
    // Every documented route exists: unauthenticated calls get 401/4xx from the handler,
    // never the router's ROUTE_NOT_FOUND or METHOD_NOT_ALLOWED.
    for (path, ops) in paths {
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{site_key}", "site_x");
        for method in ops.as_object().unwrap().keys() {
            let r = match method.as_str() {
                "get" => app.get(&concrete, None),
                "delete" => app.delete(&concrete, None),
                "post" => app.post(&concrete, None, &json!({})),
                "patch" => app.patch(&concrete, None, &json!({})),
                m => panic!("unexpected method {m}"),
            };
            assert!(
                !matches!(r.code(), "ROUTE_NOT_FOUND" | "METHOD_NOT_ALLOWED"),
                "{method} {path} is documented but not routed: {}",
                r.text
            );
        }
    }
}

#[test]
fn everything_survives_a_restart() {
    let mut app = TestApp::spawn();
    let t = app.register("a@example.com");
    let key = app.post("/api/v1/api-keys", Some(&t), &json!({"name": "k"})).body["key"]
        .as_str()
        .unwrap()
        .to_string();
    let e = app.running_ab(&t, ab_body("persist"));
    let id = e["id"].as_str().unwrap().to_string();
    let sk = app.site_key(&t);
    let first = app.assign(&sk, &id, "visitor-1").body;
    assert_eq!(app.convert(&sk, &id, "visitor-1").body["recorded"], true);
    app.stop();
    app.start();
    let t2 = app.login("a@example.com", "correct horse");
    assert_eq!(app.get("/api/v1/auth/me", Some(&key)).status, 200, "api key survives");
    let got = app.get(&format!("/api/v1/experiments/{id}"), Some(&t2));
    assert_eq!(got.body["status"], "running");
    assert_eq!(got.body["stats"]["visitors"], 1);
    assert_eq!(got.body["stats"]["conversions"], 1);
    let again = app.assign(&sk, &id, "visitor-1").body;
    assert_eq!(again["new"], false);
    assert_eq!(again["assignment_id"], first["assignment_id"]);
    assert_eq!(again["variants"], first["variants"]);
    assert_eq!(app.convert(&sk, &id, "visitor-1").body["reason"], "duplicate");
}
