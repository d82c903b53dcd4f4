//! The OpenAPI document, generated from one table of routes. A test walks the same table
//! against the running server, so a documented route that the router lacks fails the build.

use serde_json::{Map, Value, json};

pub struct Route {
    pub method: &'static str,
    /// Path as the client sees it, `{id}` for parameters.
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: bool,
    pub ok: u16,
}

const fn r(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: bool,
    ok: u16,
) -> Route {
    Route { method, path, summary, auth, ok }
}

pub const ROUTES: &[Route] = &[
    r("get", "/health", "Liveness", false, 200),
    r("get", "/ready", "Readiness: the store answers", false, 200),
    r("get", "/metrics", "Prometheus metrics", false, 200),
    r("get", "/api/v1/openapi.json", "This document", false, 200),
    r("get", "/api/v1/meta/limits", "Input limits and variant content keys", false, 200),
    r("post", "/api/v1/auth/register", "Create an account (first user becomes admin)", false, 201),
    r("post", "/api/v1/auth/token", "Log in: JSON or OAuth2 password form", false, 200),
    r("get", "/api/v1/auth/me", "The caller", true, 200),
    r("get", "/api/v1/auth/status", "Whether any user exists (first-run page)", false, 200),
    r("post", "/api/v1/users", "Create a user (admin)", true, 201),
    r("get", "/api/v1/users", "List users (admin)", true, 200),
    r("post", "/api/v1/api-keys", "Create an API key (shown once)", true, 201),
    r("get", "/api/v1/api-keys", "List the caller's API keys", true, 200),
    r("delete", "/api/v1/api-keys/{id}", "Revoke an API key", true, 204),
    r("get", "/api/v1/installations", "The site key and snippet", true, 200),
    r("get", "/api/v1/audit", "The caller's audit hash chain, oldest first", true, 200),
    r("post", "/api/v1/webhooks", "Subscribe a URL to events (secret shown once)", true, 201),
    r("get", "/api/v1/webhooks", "The caller's webhooks", true, 200),
    r("delete", "/api/v1/webhooks/{id}", "Remove a webhook", true, 204),
    r(
        "get",
        "/api/v1/webhooks/{id}/deliveries",
        "Delivery log with attempts and status codes",
        true,
        200,
    ),
    r("post", "/api/v1/experiments", "Create an experiment", true, 201),
    r("get", "/api/v1/experiments", "List experiments", true, 200),
    r("get", "/api/v1/experiments/{id}", "An experiment with its stats", true, 200),
    r("patch", "/api/v1/experiments/{id}", "Change an experiment", true, 200),
    r("delete", "/api/v1/experiments/{id}", "Archive, or ?hard=true delete a draft", true, 204),
    r("post", "/api/v1/experiments/{id}/start", "draft -> running", true, 200),
    r("post", "/api/v1/experiments/{id}/pause", "running -> paused", true, 200),
    r("post", "/api/v1/experiments/{id}/resume", "paused -> running", true, 200),
    r("post", "/api/v1/experiments/{id}/complete", "running or paused -> completed", true, 200),
    r(
        "get",
        "/api/v1/experiments/{id}/export",
        "Assignments with conversions, format=csv or xlsx (streamed); part=summary for per-arm",
        true,
        200,
    ),
    r(
        "post",
        "/api/v1/tracker/assign",
        "Sticky assignment, by experiment or by page URL",
        false,
        200,
    ),
    r(
        "post",
        "/api/v1/tracker/assign/batch",
        "Assign up to 10,000 users (email, push)",
        false,
        200,
    ),
    r("post", "/api/v1/tracker/convert", "Record a conversion", false, 200),
    r("get", "/tracker.js", "The browser tracker", false, 200),
    r("get", "/t/{site_key}.js", "Per-site tracker with the selectors to hide", false, 200),
    r(
        "get",
        "/api/v1/analytics/experiments/{id}",
        "Results: posteriors, prob_best, SRM, recommendation",
        true,
        200,
    ),
    r(
        "get",
        "/api/v1/analytics/experiments/{id}/timeseries",
        "Hourly or daily counts per arm",
        true,
        200,
    ),
];

pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths.entry(route.path.to_string()).or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": route.summary,
            "responses": {
                route.ok.to_string(): {"description": "success"},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if route.auth {
            op["security"] = json!([{"bearer": []}]);
        }
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.split('}').next()))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        entry[route.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Samplit", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}}}}
        }
    })
}
