//! /installations/verify and /integrations: checking a site for the snippet, and the
//! WordPress and Shopify ways of installing it.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{ApiJson, Auth};
use super::{ApiResult, AppState};
use crate::service::integrations::{ShopifySteps, Verification};

pub const ZIP: &str = "application/zip";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/installations/verify", post(verify))
        .route("/integrations/wordpress.zip", get(wordpress))
        .route("/integrations/shopify", get(shopify))
}

/// The body of POST /installations/verify.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The page to check, `http://` or `https://`.
    pub url: String,
}

async fn verify(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<VerifyBody>,
) -> ApiResult<Json<Verification>> {
    let inst = s.services.accounts.installation(&p);
    Ok(Json(s.services.integrations.verify(&inst, &b.url).await?))
}

async fn wordpress(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    let inst = s.services.accounts.installation(&p);
    let zip = s.services.integrations.wordpress_zip(&inst)?;
    Ok((
        [
            (header::CONTENT_TYPE, ZIP),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"samplit-wordpress.zip\""),
            // It carries the caller's site key: not for shared caches.
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        zip,
    )
        .into_response())
}

async fn shopify(State(s): State<AppState>, Auth(p): Auth) -> Json<ShopifySteps> {
    Json(s.services.integrations.shopify(&s.services.accounts.installation(&p)))
}
