//! The OpenAPI document, generated from one table of routes and the request and response
//! types themselves (their `utoipa::ToSchema` derives), so a renamed field changes the
//! document with the code. `tests/openapi.rs` checks real answers against it, and
//! `tests/api.rs` walks the table against the running server.

use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::http::{account, campaigns, experiments, integrations, ops, tracker, webhooks};
use crate::service::{
    accounts as auth, analytics, audit, experiments as exps, simulate, tracker as trk,
};

/// Registers a body's schema (and every schema it refers to) and answers how to refer to it.
pub type Body = fn(&mut Map<String, Value>) -> Value;

pub struct Route {
    pub method: &'static str,
    /// Path as the client sees it, `{id}` for parameters.
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: bool,
    pub ok: u16,
    /// The JSON body the route takes, if any.
    pub request: Option<Body>,
    /// The JSON body of its success answer; `None` for empty or non-JSON answers.
    pub response: Option<Body>,
    /// The media type of a non-JSON success answer.
    pub media: Option<&'static str>,
}

fn of<T: ToSchema>(schemas: &mut Map<String, Value>) -> Value {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    for (name, s) in nested {
        schemas.insert(name, serde_json::to_value(s).unwrap_or_default());
    }
    let name = T::name().to_string();
    schemas.insert(name.clone(), serde_json::to_value(T::schema()).unwrap_or_default());
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// POST /tracker/assign answers one assignment, or by page URL a list of them.
fn assign_answer(schemas: &mut Map<String, Value>) -> Value {
    json!({"oneOf": [of::<trk::Assignment>(schemas), of::<trk::PageAssignments>(schemas)]})
}

/// The document itself: any JSON object.
fn any_object(_: &mut Map<String, Value>) -> Value {
    json!({"type": "object"})
}

#[allow(clippy::too_many_arguments)]
const fn r(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: bool,
    ok: u16,
    request: Option<Body>,
    response: Option<Body>,
) -> Route {
    Route { method, path, summary, auth, ok, request, response, media: None }
}

/// A route whose success answer is not JSON.
const fn raw(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: bool,
    media: &'static str,
) -> Route {
    Route {
        method,
        path,
        summary,
        auth,
        ok: 200,
        request: None,
        response: None,
        media: Some(media),
    }
}

pub const ROUTES: &[Route] = &[
    r("get", "/health", "Liveness", false, 200, None, Some(of::<ops::Health>)),
    r("get", "/ready", "Readiness: the store answers", false, 200, None, Some(of::<ops::Ready>)),
    raw("get", "/metrics", "Prometheus metrics", false, "text/plain"),
    r("get", "/api/v1/openapi.json", "This document", false, 200, None, Some(any_object)),
    r(
        "get",
        "/api/v1/meta/limits",
        "Input limits and variant content keys",
        false,
        200,
        None,
        Some(of::<crate::http::meta::Limits>),
    ),
    r(
        "post",
        "/api/v1/auth/register",
        "Create an account (first user becomes admin)",
        false,
        201,
        Some(of::<account::RegisterBody>),
        Some(of::<auth::UserView>),
    ),
    r(
        "post",
        "/api/v1/auth/token",
        "Log in: JSON or OAuth2 password form",
        false,
        200,
        Some(of::<account::TokenBody>),
        Some(of::<auth::TokenAnswer>),
    ),
    r("get", "/api/v1/auth/me", "The caller", true, 200, None, Some(of::<auth::Me>)),
    r(
        "patch",
        "/api/v1/auth/me",
        "Change the caller's own settings (email notifications)",
        true,
        200,
        Some(of::<account::MePatchBody>),
        Some(of::<auth::Me>),
    ),
    r(
        "get",
        "/api/v1/auth/status",
        "Whether any user exists (first-run page)",
        false,
        200,
        None,
        Some(of::<auth::AuthStatus>),
    ),
    r(
        "post",
        "/api/v1/users",
        "Create a user (admin)",
        true,
        201,
        Some(of::<account::RegisterBody>),
        Some(of::<auth::UserView>),
    ),
    r("get", "/api/v1/users", "List users (admin)", true, 200, None, Some(of::<auth::UserList>)),
    r(
        "patch",
        "/api/v1/users/{id}",
        "Disable, enable, rename or change the role of a user (admin)",
        true,
        200,
        Some(of::<account::UserPatchBody>),
        Some(of::<auth::UserView>),
    ),
    r(
        "delete",
        "/api/v1/users/{id}",
        "Remove a user and their API keys (admin)",
        true,
        204,
        None,
        None,
    ),
    r(
        "post",
        "/api/v1/users/{id}/password",
        "Set a user's password and end their sessions (admin)",
        true,
        200,
        Some(of::<account::PasswordBody>),
        Some(of::<auth::UserView>),
    ),
    r(
        "post",
        "/api/v1/api-keys",
        "Create an API key (shown once)",
        true,
        201,
        Some(of::<account::KeyBody>),
        Some(of::<auth::NewApiKey>),
    ),
    r(
        "get",
        "/api/v1/api-keys",
        "List the caller's API keys",
        true,
        200,
        None,
        Some(of::<auth::ApiKeyList>),
    ),
    r(
        "delete",
        "/api/v1/api-keys/{id}",
        "Revoke an API key (the caller's; an admin's: anyone's)",
        true,
        204,
        None,
        None,
    ),
    r(
        "get",
        "/api/v1/installations",
        "The site key and snippet",
        true,
        200,
        None,
        Some(of::<auth::Installation>),
    ),
    r(
        "post",
        "/api/v1/installations/verify",
        "Fetch a page server-side and look for the caller's snippet",
        true,
        200,
        Some(of::<integrations::VerifyBody>),
        Some(of::<crate::service::integrations::Verification>),
    ),
    raw(
        "get",
        "/api/v1/integrations/wordpress.zip",
        "A WordPress plugin that adds the caller's snippet to every page",
        true,
        "application/zip",
    ),
    r(
        "get",
        "/api/v1/integrations/shopify",
        "The snippet and where to paste it in a Shopify theme",
        true,
        200,
        None,
        Some(of::<crate::service::integrations::ShopifySteps>),
    ),
    r(
        "get",
        "/api/v1/audit",
        "The caller's audit hash chain, oldest first",
        true,
        200,
        None,
        Some(of::<audit::AuditPage>),
    ),
    r(
        "get",
        "/api/v1/overview",
        "The caller's home page: experiments by status, traffic, leaders, adaptive gain",
        true,
        200,
        None,
        Some(of::<crate::service::overview::Overview>),
    ),
    r(
        "get",
        "/api/v1/audit/verify",
        "Recompute the caller's audit chain (?scope=all: every chain, admins)",
        true,
        200,
        None,
        Some(of::<audit::AuditVerification>),
    ),
    r(
        "post",
        "/api/v1/webhooks",
        "Subscribe a URL to events (secret shown once)",
        true,
        201,
        Some(of::<webhooks::WebhookBody>),
        Some(of::<crate::service::webhooks::NewWebhook>),
    ),
    r(
        "get",
        "/api/v1/webhooks",
        "The caller's webhooks",
        true,
        200,
        None,
        Some(of::<crate::service::webhooks::WebhookList>),
    ),
    r("delete", "/api/v1/webhooks/{id}", "Remove a webhook", true, 204, None, None),
    r(
        "get",
        "/api/v1/webhooks/{id}/deliveries",
        "Delivery log with attempts and status codes",
        true,
        200,
        None,
        Some(of::<crate::service::webhooks::DeliveryList>),
    ),
    r(
        "get",
        "/api/v1/notifications",
        "Whether email is set up, the caller's switches and recent emails",
        true,
        200,
        None,
        Some(of::<crate::service::notifications::NotificationStatus>),
    ),
    r(
        "post",
        "/api/v1/notifications/test",
        "Send a test email to the caller now",
        true,
        200,
        None,
        Some(of::<crate::service::notifications::TestSent>),
    ),
    r(
        "post",
        "/api/v1/webhooks/{id}/test",
        "Queue a signed webhook.test delivery to this webhook",
        true,
        202,
        None,
        Some(of::<crate::service::webhooks::DeliveryView>),
    ),
    r(
        "post",
        "/api/v1/experiments",
        "Create an experiment",
        true,
        201,
        Some(of::<crate::engine::model::ExperimentInput>),
        Some(of::<exps::ExperimentView>),
    ),
    r(
        "get",
        "/api/v1/experiments",
        "List experiments",
        true,
        200,
        None,
        Some(of::<exps::ExperimentList>),
    ),
    r(
        "get",
        "/api/v1/experiments/{id}",
        "An experiment with its stats",
        true,
        200,
        None,
        Some(of::<exps::ExperimentDetail>),
    ),
    r(
        "patch",
        "/api/v1/experiments/{id}",
        "Change an experiment",
        true,
        200,
        Some(of::<crate::engine::model::ExperimentInput>),
        Some(of::<exps::ExperimentView>),
    ),
    r(
        "delete",
        "/api/v1/experiments/{id}",
        "Archive, or ?hard=true delete a draft",
        true,
        204,
        None,
        None,
    ),
    r(
        "post",
        "/api/v1/experiments/{id}/start",
        "draft -> running",
        true,
        200,
        None,
        Some(of::<exps::ExperimentView>),
    ),
    r(
        "post",
        "/api/v1/experiments/{id}/pause",
        "running -> paused",
        true,
        200,
        None,
        Some(of::<exps::ExperimentView>),
    ),
    r(
        "post",
        "/api/v1/experiments/{id}/resume",
        "paused -> running",
        true,
        200,
        None,
        Some(of::<exps::ExperimentView>),
    ),
    r(
        "post",
        "/api/v1/experiments/{id}/complete",
        "running or paused -> completed (the body is optional)",
        true,
        200,
        Some(of::<experiments::CompleteBody>),
        Some(of::<exps::ExperimentView>),
    ),
    r(
        "post",
        "/api/v1/experiments/{id}/waves",
        "Send a campaign wave: up to 10,000 recipients, each with a variant, open pixel and links",
        true,
        201,
        Some(of::<campaigns::WaveBody>),
        Some(of::<crate::service::campaigns::WaveAnswer>),
    ),
    r(
        "get",
        "/api/v1/experiments/{id}/waves",
        "A campaign's waves, oldest first, with recipients per variant",
        true,
        200,
        None,
        Some(of::<crate::service::campaigns::WaveList>),
    ),
    raw(
        "get",
        "/o/{token}.gif",
        "Campaign open pixel (public): records an open, answers a 1x1 GIF",
        false,
        "image/gif",
    ),
    r(
        "get",
        "/c/{token}",
        "Campaign click link (public): records a click, 302 to the link it was made for",
        false,
        302,
        None,
        None,
    ),
    raw(
        "get",
        "/api/v1/experiments/{id}/export",
        "Assignments with conversions, format=csv or xlsx (streamed); part=summary for per-arm",
        true,
        "text/csv",
    ),
    r(
        "post",
        "/api/v1/tracker/assign",
        "Sticky assignment, by experiment or by page URL",
        false,
        200,
        Some(of::<tracker::AssignBody>),
        Some(assign_answer),
    ),
    r(
        "post",
        "/api/v1/tracker/assign/batch",
        "Assign up to 10,000 users (email, push): the owner's token, not only the site key",
        true,
        200,
        Some(of::<tracker::BatchBody>),
        Some(of::<trk::BatchAssignments>),
    ),
    r(
        "post",
        "/api/v1/tracker/convert",
        "Record a conversion",
        false,
        200,
        Some(of::<tracker::ConvertBody>),
        Some(of::<trk::ConvertAnswer>),
    ),
    raw("get", "/tracker.js", "The browser tracker", false, "application/javascript"),
    raw(
        "get",
        "/t/{site_key}.js",
        "Per-site tracker with the selectors to hide",
        false,
        "application/javascript",
    ),
    r(
        "get",
        "/api/v1/analytics/experiments/{id}",
        "Results: posteriors, prob_best, SRM, recommendation",
        true,
        200,
        None,
        Some(of::<analytics::Analytics>),
    ),
    r(
        "get",
        "/api/v1/analytics/experiments/{id}/timeseries",
        "Hourly or daily counts per arm",
        true,
        200,
        None,
        Some(of::<analytics::Timeseries>),
    ),
    r(
        "post",
        "/api/v1/simulate",
        "Adaptive, fast_learning and fixed on synthetic traffic, with an optional stop rule (public, rate-limited)",
        false,
        200,
        Some(of::<simulate::SimRequest>),
        Some(of::<simulate::Simulation>),
    ),
];

pub fn document() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "details": {"type": "object"}}}}}),
    );
    for route in ROUTES {
        let entry = paths.entry(route.path.to_string()).or_insert_with(|| json!({}));
        let ok = match (route.response, route.media) {
            (Some(body), _) => json!({"description": "success",
                "content": {"application/json": {"schema": body(&mut schemas)}}}),
            (None, Some(media)) => json!({"description": "success", "content": {media: {}}}),
            (None, None) => json!({"description": "success, no body"}),
        };
        let mut op = json!({
            "summary": route.summary,
            "responses": {
                route.ok.to_string(): ok,
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if let Some(body) = route.request {
            op["requestBody"] = json!({"required": route.path != "/api/v1/experiments/{id}/complete",
                "content": {"application/json": {"schema": body(&mut schemas)}}});
        }
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
        "openapi": "3.1.0",
        "info": {"title": "Samplit", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        }
    })
}
