//! `GET /api/v1/meta/limits`: the server's input limits and the variant content keys, so
//! the dashboard reads them instead of keeping copies that drift. Public: the values are
//! the same for everyone and say nothing about any account.

use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::engine::model::{
    CONTENT_KEYS, MAX_COMBINATIONS, MAX_ELEMENTS, MAX_NAME, MAX_VARIANTS, MIN_VARIANTS,
};
use crate::engine::simulator::{MAX_REPETITIONS, MAX_VISITORS};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    pub min_variants: usize,
    pub max_variants: usize,
    pub max_elements: usize,
    pub max_combinations: usize,
    /// Characters in an experiment, element or variant name.
    pub max_name: usize,
    pub content_keys: Vec<String>,
    pub simulator: SimulatorLimits,
    /// The shortest password accepted.
    pub min_password: usize,
    /// The events a webhook may subscribe to.
    pub webhook_events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimulatorLimits {
    pub max_visitors: u64,
    pub max_repetitions: u32,
}

pub fn limits() -> Limits {
    Limits {
        min_variants: MIN_VARIANTS,
        max_variants: MAX_VARIANTS,
        max_elements: MAX_ELEMENTS,
        max_combinations: MAX_COMBINATIONS,
        max_name: MAX_NAME,
        content_keys: CONTENT_KEYS.iter().map(|k| k.to_string()).collect(),
        simulator: SimulatorLimits { max_visitors: MAX_VISITORS, max_repetitions: MAX_REPETITIONS },
        min_password: crate::service::accounts::MIN_PASSWORD,
        webhook_events: crate::service::webhooks::EVENTS.iter().map(|e| e.to_string()).collect(),
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/meta/limits", get(|| async { Json(limits()) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::Content;

    #[test]
    fn content_keys_are_the_fields_of_the_model() {
        // A struct literal: a field added to Content fails to compile here until it is
        // listed (and so offered by the dashboard).
        let every = Content {
            text: Some(String::new()),
            html: Some(String::new()),
            attributes: Some(Default::default()),
            style: Some(Default::default()),
            add_class: Some(vec![]),
            remove_class: Some(vec![]),
            hide: Some(false),
            redirect: Some(String::new()),
        };
        let v = serde_json::to_value(every).unwrap();
        let mut fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut listed = CONTENT_KEYS.to_vec();
        fields.sort_unstable();
        listed.sort_unstable();
        assert_eq!(fields, listed);
    }

    fn dashboard_sources() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static/dashboard");
        let mut out = Vec::new();
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "js") {
                    out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        assert!(out.len() > 5, "dashboard sources found");
        out
    }

    #[test]
    fn the_dashboard_keeps_no_copy_of_the_limits() {
        let l = limits();
        let copies = [
            format!("maxlength: {}", l.max_name),
            "MAX_VARIANTS =".into(),
            "MIN_VARIANTS =".into(),
            "MAX_ELEMENTS =".into(),
            "CONTENT_KEYS =".into(),
            format!("length > {}", l.max_variants),
            format!("max: '{}'", l.simulator.max_visitors),
            format!("1 to {}.'", l.simulator.max_repetitions),
            format!("(1–{})", l.simulator.max_repetitions),
            "1,000,000".into(),
            "'add_class'".into(),
            "'redirect'".into(),
            "MIN_PASSWORD = 8".into(),
            "['experiment.started'".into(),
        ];
        for (path, text) in dashboard_sources() {
            for c in &copies {
                assert!(
                    !text.contains(c.as_str()),
                    "{path} hard-codes `{c}`: read api.js `limits`"
                );
            }
        }
        let api = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static/dashboard/api.js"),
        )
        .unwrap();
        assert!(api.contains("'/meta/limits'"), "the dashboard reads the limits route");
    }

    #[tokio::test]
    async fn the_route_answers_the_models_values() {
        use tower::ServiceExt;
        let app: Router = Router::new().route("/meta/limits", get(|| async { Json(limits()) }));
        let res = app
            .oneshot(
                axum::http::Request::get("/meta/limits").body(axum::body::Body::empty()).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        let got: Limits = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, limits());
        assert_eq!((got.max_variants, got.max_name), (MAX_VARIANTS, MAX_NAME));
    }
}
