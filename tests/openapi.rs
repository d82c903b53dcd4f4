//! The OpenAPI document against the server's real answers: every JSON route documents its
//! request and response bodies, and what the routes actually answer (and what the tests send)
//! fits those schemas, with no field the document does not name.

mod common;

use common::{Res, TestApp, ab_body};
use serde_json::{Map, Value, json};

/// A small validator for the subset of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that
/// the generated document contains. `strict` refuses properties a schema does not declare.
struct Validator<'a> {
    schemas: &'a Map<String, Value>,
}

impl Validator<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                let target = self.schemas.get(name).unwrap_or_else(|| panic!("missing {r}"));
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// Every property name an object schema declares, through `allOf`, `oneOf` and refs.
    fn declared(&self, schema: &Value, out: &mut Vec<String>) {
        let s = self.resolve(schema);
        if let Some(p) = s.get("properties").and_then(Value::as_object) {
            out.extend(p.keys().cloned());
        }
        for k in ["allOf", "oneOf", "anyOf"] {
            for sub in s.get(k).and_then(Value::as_array).into_iter().flatten() {
                self.declared(sub, out);
            }
        }
    }

    fn check(&self, schema: &Value, v: &Value, path: &str, strict: bool) -> Result<(), String> {
        let s = self.resolve(schema);
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(sub, v, path, false)?;
            }
            if strict && let Some(obj) = v.as_object() {
                let mut names = Vec::new();
                self.declared(s, &mut names);
                if let Some(extra) = obj.keys().find(|k| !names.contains(k)) {
                    return Err(format!("{path}.{extra} is not in the document"));
                }
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(alts) = s.get(key).and_then(Value::as_array) {
                let errors: Vec<String> =
                    alts.iter().filter_map(|a| self.check(a, v, path, strict).err()).collect();
                if errors.len() == alts.len() {
                    return Err(format!("{path} matches none of {key}: {errors:?}"));
                }
            }
        }
        if let Some(allowed) = s.get("enum").and_then(Value::as_array)
            && !allowed.contains(v)
        {
            return Err(format!("{path} = {v} is not one of {allowed:?}"));
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let fits = |t: &str| match t {
                "null" => v.is_null(),
                "boolean" => v.is_boolean(),
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                _ => false,
            };
            if !types.iter().any(|t| fits(t)) {
                return Err(format!("{path} = {v} is not of type {t}"));
            }
        }
        if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
            && n < min
        {
            return Err(format!("{path} = {n} is below the minimum {min}"));
        }
        if let Some(obj) = v.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            for req in s.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = req.as_str().unwrap_or_default();
                if !obj.contains_key(name) {
                    return Err(format!("{path}.{name} is required but missing"));
                }
            }
            for (k, val) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => self.check(ps, val, &format!("{path}.{k}"), true)?,
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            return Err(format!("{path}.{k} is not allowed"));
                        }
                        Some(extra @ Value::Object(_)) => {
                            self.check(extra, val, &format!("{path}.{k}"), true)?
                        }
                        _ if strict && props.is_some() && s.get("allOf").is_none() => {
                            return Err(format!("{path}.{k} is not in the document"));
                        }
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                self.check(items, item, &format!("{path}[{i}]"), true)?;
            }
        }
        Ok(())
    }
}

struct Checker {
    doc: Value,
    seen: Vec<(String, String)>,
}

impl Checker {
    fn operation(&self, method: &str, template: &str) -> &Value {
        let op = &self.doc["paths"][template][method];
        assert!(op.is_object(), "{method} {template} is not documented");
        op
    }

    fn validator(&self) -> Validator<'_> {
        Validator { schemas: self.doc["components"]["schemas"].as_object().expect("schemas") }
    }

    /// Checks a request body we sent and the answer we got against the document.
    fn exchange(&mut self, method: &str, template: &str, sent: Option<&Value>, res: &Res) {
        let op = self.operation(method, template).clone();
        let v = self.validator();
        if let Some(body) = sent {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{method} {template} documents no request body");
            if let Err(e) = v.check(schema, body, "request", true) {
                panic!("{method} {template}: the request does not fit the document: {e}\n{body}");
            }
        }
        let status = res.status.to_string();
        let documented = &op["responses"][&status];
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which is not documented: {}",
            res.text
        );
        let schema = &documented["content"]["application/json"]["schema"];
        if schema.is_object() {
            if let Err(e) = v.check(schema, &res.body, "answer", true) {
                panic!(
                    "{method} {template}: the answer does not fit the document: {e}\n{}",
                    res.text
                );
            }
        } else {
            assert!(res.text.is_empty(), "{method} {template}: undocumented body {}", res.text);
        }
        self.seen.push((method.to_string(), template.to_string()));
    }
}

#[test]
fn real_answers_fit_the_documented_schemas() {
    let sink = common::smtp_sink::SmtpSink::start();
    let app = TestApp::spawn_with(&[
        ("SAMPLIT_WEBHOOKS__ALLOW_PRIVATE", "true"),
        ("SAMPLIT_NOTIFICATIONS__SMTP_URL", &sink.url()),
        ("SAMPLIT_NOTIFICATIONS__FROM", "samplit@example.com"),
    ]);
    let doc = app.get("/api/v1/openapi.json", None);
    assert_eq!(doc.status, 200);
    let mut c = Checker { doc: doc.body.clone(), seen: vec![] };

    // Every JSON route documents its bodies: a route without a documented success body is
    // one of the few that answer none or answer another media type.
    for (path, ops) in c.doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for (code, r) in op["responses"].as_object().unwrap() {
                // No content: 204, and redirects (a campaign's click link).
                if code == "204" || code.starts_with('3') || code == "default" {
                    continue;
                }
                assert!(r["content"].is_object(), "{method} {path} {code} documents no content");
            }
            if matches!(method.as_str(), "post" | "patch")
                && !path.ends_with("/start")
                && !path.ends_with("/pause")
                && !path.ends_with("/resume")
                && !path.ends_with("/test")
            {
                assert!(op["requestBody"].is_object(), "{method} {path} documents no body");
            }
        }
    }

    let get = |c: &mut Checker, template: &str, concrete: &str, token: Option<&str>| {
        let r = app.get(concrete, token);
        c.exchange("get", template, None, &r);
        r
    };
    let post = |c: &mut Checker, template: &str, concrete: &str, t: Option<&str>, b: Value| {
        let r = app.post(concrete, t, &b);
        c.exchange("post", template, Some(&b), &r);
        r
    };

    get(&mut c, "/health", "/health", None);
    get(&mut c, "/ready", "/ready", None);
    get(&mut c, "/api/v1/auth/status", "/api/v1/auth/status", None);
    get(&mut c, "/api/v1/meta/limits", "/api/v1/meta/limits", None);
    let reg = json!({"email": "owner@example.com", "password": "correct horse", "name": "O"});
    post(&mut c, "/api/v1/auth/register", "/api/v1/auth/register", None, reg);
    let login = json!({"email": "owner@example.com", "password": "correct horse"});
    let tok = post(&mut c, "/api/v1/auth/token", "/api/v1/auth/token", None, login);
    let t = tok.body["access_token"].as_str().unwrap().to_string();
    let t = Some(t.as_str());
    let me = get(&mut c, "/api/v1/auth/me", "/api/v1/auth/me", t);
    let site = me.body["site_key"].as_str().unwrap().to_string();
    let prefs = json!({"notifications": {"srm_detected": false}});
    let r = app.patch("/api/v1/auth/me", t, &prefs);
    c.exchange("patch", "/api/v1/auth/me", Some(&prefs), &r);
    assert_eq!(r.body["notifications"]["srm_detected"], false, "{}", r.text);
    let r = app.post("/api/v1/notifications/test", t, &json!({}));
    c.exchange("post", "/api/v1/notifications/test", None, &r);
    assert_eq!(r.status, 200, "{}", r.text);
    let member = json!({"email": "m@example.com", "password": "member pass", "role": "member"});
    let m = post(&mut c, "/api/v1/users", "/api/v1/users", t, member);
    let mid_user = m.body["id"].as_str().unwrap().to_string();
    get(&mut c, "/api/v1/users", "/api/v1/users", t);
    let change = json!({"name": "Member", "role": "member", "disabled": true});
    let r = app.patch(&format!("/api/v1/users/{mid_user}"), t, &change);
    c.exchange("patch", "/api/v1/users/{id}", Some(&change), &r);
    assert_eq!(r.body["disabled"], true, "{}", r.text);
    let pw = json!({"password": "reset by admin"});
    let path = format!("/api/v1/users/{mid_user}/password");
    post(&mut c, "/api/v1/users/{id}/password", &path, t, pw);
    let r = app.delete(&format!("/api/v1/users/{mid_user}"), t);
    c.exchange("delete", "/api/v1/users/{id}", None, &r);
    assert_eq!(r.status, 204, "{}", r.text);
    post(&mut c, "/api/v1/api-keys", "/api/v1/api-keys", t, json!({"name": "ci"}));
    get(&mut c, "/api/v1/api-keys", "/api/v1/api-keys", t);
    get(&mut c, "/api/v1/installations", "/api/v1/installations", t);

    // Experiments: an A/B test through its whole life, and a multi-element one.
    let e = post(&mut c, "/api/v1/experiments", "/api/v1/experiments", t, ab_body("typed"));
    let id = e.body["id"].as_str().unwrap().to_string();
    let one = "/api/v1/experiments/{id}";
    let patch = json!({"description": "checked against the document", "traffic_allocation": 0.9});
    let r = app.patch(&format!("/api/v1/experiments/{id}"), t, &patch);
    c.exchange("patch", one, Some(&patch), &r);
    // A draft answers the control when asked to fall back.
    let fb = json!({"site_key": site, "experiment_id": id, "user_id": "v0", "fallback": true});
    let r = post(&mut c, "/api/v1/tracker/assign", "/api/v1/tracker/assign", None, fb);
    assert_eq!(r.body["status"], "not_running");
    let r = app.post(&format!("/api/v1/experiments/{id}/start"), t, &json!({}));
    c.exchange("post", "/api/v1/experiments/{id}/start", None, &r);
    let multi = json!({
        "name": "grid", "type": "multi_element", "allocation": "fixed",
        "elements": [
            {"name": "CTA", "selector": "#cta", "variants": [{"name": "A", "content": {}}, {"name": "B", "content": {"style": {"color": "red"}}}]},
            {"name": "Copy", "selector": "#h1", "variants": [{"name": "X", "content": {}}, {"name": "Y", "content": {"text": "Hi"}}]}
        ]
    });
    let m = post(&mut c, "/api/v1/experiments", "/api/v1/experiments", t, multi);
    let mid = m.body["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/experiments/{mid}/start"), t, &json!({}));

    // The experiment takes 90% of visitors (its seed is its random id), so the repeated
    // conversion is one that was recorded, not simply u0's.
    let mut converted = None;
    for u in 0..40 {
        let b = json!({"site_key": site, "experiment_id": id, "user_id": format!("u{u}")});
        post(&mut c, "/api/v1/tracker/assign", "/api/v1/tracker/assign", None, b);
        if u % 3 == 0 {
            let b = json!({"site_key": site, "experiment_id": id, "user_id": format!("u{u}"), "value": 9.5});
            let r = post(&mut c, "/api/v1/tracker/convert", "/api/v1/tracker/convert", None, b);
            if r.body["recorded"] == true && converted.is_none() {
                converted = Some(format!("u{u}"));
            }
        }
    }
    let converted = converted.expect("some of 14 visitors converted");
    let dup = json!({"site_key": site, "experiment_id": id, "user_id": converted});
    let r = post(&mut c, "/api/v1/tracker/convert", "/api/v1/tracker/convert", None, dup);
    assert_eq!(r.body["reason"], "duplicate");
    let page = json!({"site_key": site, "user_id": "u1", "url": "https://shop.example/"});
    let r = post(&mut c, "/api/v1/tracker/assign", "/api/v1/tracker/assign", None, page);
    assert_eq!(r.body["assignments"].as_array().unwrap().len(), 2);
    let batch = json!({"site_key": site, "experiment_id": mid, "user_ids": ["a", "b", "c"]});
    post(&mut c, "/api/v1/tracker/assign/batch", "/api/v1/tracker/assign/batch", t, batch);

    get(&mut c, "/api/v1/experiments", "/api/v1/experiments", t);
    get(&mut c, one, &format!("/api/v1/experiments/{id}"), t);
    get(&mut c, one, &format!("/api/v1/experiments/{mid}"), t);
    let results = "/api/v1/analytics/experiments/{id}";
    get(&mut c, results, &format!("/api/v1/analytics/experiments/{id}"), t);
    get(&mut c, results, &format!("/api/v1/analytics/experiments/{mid}"), t);
    let series = "/api/v1/analytics/experiments/{id}/timeseries";
    get(&mut c, series, &format!("/api/v1/analytics/experiments/{id}/timeseries?bucket=day"), t);
    let r = app.post(&format!("/api/v1/experiments/{id}/pause"), t, &json!({}));
    c.exchange("post", "/api/v1/experiments/{id}/pause", None, &r);
    let r = app.post(&format!("/api/v1/experiments/{id}/resume"), t, &json!({}));
    c.exchange("post", "/api/v1/experiments/{id}/resume", None, &r);

    // A campaign and a wave of it.
    let camp = json!({"name": "mail", "type": "campaign", "channel": "email",
        "goal": {"type": "open"},
        "variants": [{"name": "A", "content": {"text": "Hi", "html": "<p>x</p>"}},
                     {"name": "B", "content": {"text": "Hello"}}]});
    let r = post(&mut c, "/api/v1/experiments", "/api/v1/experiments", t, camp);
    let cid = r.body["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/experiments/{cid}/start"), t, &json!({}));
    let waves = "/api/v1/experiments/{id}/waves";
    let body = json!({"recipients": ["r1", "r2"], "links": ["https://shop.example/"]});
    let r = post(&mut c, waves, &format!("/api/v1/experiments/{cid}/waves"), t, body);
    assert_eq!(r.status, 201, "{}", r.text);
    get(&mut c, waves, &format!("/api/v1/experiments/{cid}/waves"), t);

    // Webhooks, with a delivery in the log.
    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["experiment.completed"]});
    let h = post(&mut c, "/api/v1/webhooks", "/api/v1/webhooks", t, hook);
    let hid = h.body["id"].as_str().unwrap().to_string();
    get(&mut c, "/api/v1/webhooks", "/api/v1/webhooks", t);
    let done = json!({"winner_variant_id": e.body["elements"][0]["variants"][1]["id"]});
    let r = app.post(&format!("/api/v1/experiments/{id}/complete"), t, &done);
    c.exchange("post", "/api/v1/experiments/{id}/complete", Some(&done), &r);
    let log = format!("/api/v1/webhooks/{hid}/deliveries");
    let r = get(&mut c, "/api/v1/webhooks/{id}/deliveries", &log, t);
    assert_eq!(r.body["total"], 1, "{}", r.text);
    let r = app.post(&format!("/api/v1/webhooks/{hid}/test"), t, &json!({}));
    c.exchange("post", "/api/v1/webhooks/{id}/test", None, &r);
    assert_eq!(r.status, 202, "{}", r.text);

    get(&mut c, "/api/v1/audit", "/api/v1/audit", t);
    let r = get(&mut c, "/api/v1/notifications", "/api/v1/notifications", t);
    assert_eq!(r.body["emails"][0]["event"], "experiment.completed", "{}", r.text);
    let v = get(&mut c, "/api/v1/audit/verify", "/api/v1/audit/verify", t);
    assert_eq!(v.body["verified"], true, "{}", v.text);
    let o = get(&mut c, "/api/v1/overview", "/api/v1/overview", t);
    assert_eq!(o.body["experiments"]["completed"], 1, "{}", o.text);
    // The installation check fetches a page on loopback (private addresses are allowed
    // here): the dashboard's own page, which carries no site snippet.
    let page = json!({"url": format!("{}/", app.base)});
    let r = post(&mut c, "/api/v1/installations/verify", "/api/v1/installations/verify", t, page);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["site_key_matches"], false, "{}", r.text);
    let r = get(&mut c, "/api/v1/integrations/shopify", "/api/v1/integrations/shopify", t);
    assert!(r.body["snippet"].as_str().is_some_and(|s| s.contains("<script")), "{}", r.text);
    let sim = json!({"arms": [{"name": "A", "true_rate": 0.05}, {"true_rate": 0.07}],
                     "visitors": 2000, "seed": 7});
    post(&mut c, "/api/v1/simulate", "/api/v1/simulate", None, sim);
    get(&mut c, "/api/v1/openapi.json", "/api/v1/openapi.json", None);

    // Every documented JSON route was exercised here.
    for (path, ops) in c.doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let json_ok =
                op["responses"].as_object().unwrap().iter().any(|(code, r)| {
                    code != "default" && r["content"]["application/json"].is_object()
                });
            if json_ok {
                assert!(
                    c.seen.iter().any(|(m, p)| m == method && p == path),
                    "{method} {path} answers JSON but this test never checked it"
                );
            }
        }
    }
}

#[test]
fn the_validator_refuses_what_the_document_does_not_say() {
    let schemas = json!({
        "A": {"type": "object", "required": ["n"], "properties": {
            "n": {"type": "integer", "minimum": 0}, "s": {"type": ["string", "null"]}}},
        "B": {"allOf": [{"$ref": "#/components/schemas/A"},
                        {"type": "object", "properties": {"extra": {"type": "boolean"}}}]}
    });
    let v = Validator { schemas: schemas.as_object().unwrap() };
    let a = json!({"$ref": "#/components/schemas/A"});
    let b = json!({"$ref": "#/components/schemas/B"});
    assert!(v.check(&a, &json!({"n": 1, "s": null}), "x", true).is_ok());
    assert!(v.check(&a, &json!({"s": "x"}), "x", true).is_err(), "missing required");
    assert!(v.check(&a, &json!({"n": -1}), "x", true).is_err(), "below minimum");
    assert!(v.check(&a, &json!({"n": 1, "z": 0}), "x", true).is_err(), "undocumented field");
    assert!(v.check(&a, &json!({"n": "1"}), "x", true).is_err(), "wrong type");
    assert!(v.check(&b, &json!({"n": 1, "extra": true}), "x", true).is_ok());
    assert!(v.check(&b, &json!({"n": 1, "other": true}), "x", true).is_err());
}

#[test]
fn the_binary_serves_a_readable_api_reference() {
    let app = TestApp::spawn();
    let page = app.get("/api-reference", None);
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.text.contains("/reference/reference.js"), "{}", page.text);
    assert!(!page.text.contains("https://"), "no CDN: everything comes from this server");
    let js = app.get("/reference/reference.js", None);
    assert_eq!(js.status, 200);
    assert!(js.text.contains("/api/v1/openapi.json"));
    assert_eq!(app.get("/reference/reference.css", None).status, 200);
}
