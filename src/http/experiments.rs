//! /experiments: create, list, read, change, lifecycle, archive and delete.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::extract::{ApiJson, Auth};
use super::{ApiResult, AppState};
use crate::engine::model::{ExperimentInput, Transition};
use crate::error::{AppError, Code};
use crate::service::experiments::{ExperimentDetail, ExperimentList, ExperimentView, ListQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/experiments", post(create).get(list))
        .route("/experiments/{id}", get(read).patch(patch).delete(remove))
        .route("/experiments/{id}/start", post(start))
        .route("/experiments/{id}/pause", post(pause))
        .route("/experiments/{id}/resume", post(resume))
        .route("/experiments/{id}/complete", post(complete))
        .route("/experiments/{id}/export", get(export))
}

/// Ids in paths: a malformed one cannot name any experiment, so it is a 404 like any other.
pub fn exp_id(s: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(s).map_err(|_| AppError::new(Code::ExpNotFound, "experiment not found"))
}

#[derive(Deserialize)]
pub struct Page {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub status: Option<String>,
}

/// `limit` (1 to `MAX_LIMIT`, default 50) and `offset` (0 or more, default 0) of a list
/// request. Every bad value of one parameter (negative, zero where refused, too large, not a
/// number) gets the same message, which states the whole range.
pub fn paging(p: &Page) -> Result<(usize, usize), AppError> {
    const MAX_LIMIT: usize = 500;
    fn num(
        field: &str,
        v: &Option<String>,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
        says: &str,
    ) -> Result<usize, AppError> {
        match v {
            None => Ok(default),
            Some(s) => s.parse::<usize>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                AppError::validation(field, format!("must be a whole number {says}"))
            }),
        }
    }
    let limit = num("limit", &p.limit, 50, 1..=MAX_LIMIT, &format!("from 1 to {MAX_LIMIT}"))?;
    Ok((limit, num("offset", &p.offset, 0, 0..=usize::MAX, "from 0 up")?))
}

async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(input): ApiJson<ExperimentInput>,
) -> ApiResult<(StatusCode, Json<ExperimentView>)> {
    Ok((StatusCode::CREATED, Json(s.services.experiments.create_experiment(&p, input).await?)))
}

async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<Page>,
) -> ApiResult<Json<ExperimentList>> {
    let (limit, offset) = paging(&q)?;
    Ok(Json(
        s.services
            .experiments
            .list_experiments(&p, ListQuery { status: q.status, limit, offset })?,
    ))
}

async fn read(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ExperimentDetail>> {
    Ok(Json(s.services.experiments.get_experiment(&p, exp_id(&id)?)?))
}

async fn patch(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ExperimentInput>,
) -> ApiResult<Json<ExperimentView>> {
    Ok(Json(s.services.experiments.patch_experiment(&p, exp_id(&id)?, input).await?))
}

async fn lifecycle(
    s: &AppState,
    p: &crate::service::accounts::Principal,
    id: &str,
    t: Transition,
    winner: Option<Uuid>,
) -> ApiResult<Json<ExperimentView>> {
    Ok(Json(s.services.experiments.transition(p, exp_id(id)?, t, winner).await?))
}

async fn start(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ExperimentView>> {
    lifecycle(&s, &p, &id, Transition::Start, None).await
}

async fn pause(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ExperimentView>> {
    lifecycle(&s, &p, &id, Transition::Pause, None).await
}

async fn resume(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ExperimentView>> {
    lifecycle(&s, &p, &id, Transition::Resume, None).await
}

/// The optional body of POST /experiments/{id}/complete.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    pub winner_variant_id: Option<Uuid>,
}

/// The body is optional here, so it is read by hand: empty means no winner.
async fn complete(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<ExperimentView>> {
    let body = super::extract::read_body(req.into_body(), &s.services.config.server).await?;
    let b: CompleteBody = if body.iter().all(u8::is_ascii_whitespace) {
        CompleteBody::default()
    } else {
        super::extract::parse_json(&body)?
    };
    lifecycle(&s, &p, &id, Transition::Complete, b.winner_variant_id).await
}

#[derive(Deserialize)]
struct DeleteQuery {
    hard: Option<String>,
}

async fn remove(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let hard = match q.hard.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(AppError::validation("hard", "must be true or false")),
    };
    s.services.experiments.delete_experiment(&p, exp_id(&id)?, hard).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
    part: Option<String>,
}

/// GET /experiments/{id}/export?format=csv|xlsx[&part=summary]: the assignments with their
/// conversions, streamed (the workbook also has the per-arm summary sheet); or only the summary.
async fn export(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::body::Body;
    use axum::http::header;
    use axum::response::IntoResponse;
    let id = exp_id(&id)?;
    let xlsx = match q.format.as_deref().unwrap_or("csv") {
        "csv" => false,
        "xlsx" => true,
        _ => return Err(AppError::validation("format", "must be csv or xlsx")),
    };
    let summary = match q.part.as_deref().unwrap_or("assignments") {
        "assignments" => false,
        "summary" => true,
        _ => return Err(AppError::validation("part", "must be assignments or summary")),
    };
    let (ctype, ext) = if xlsx {
        (crate::service::xlsx::CONTENT_TYPE, "xlsx")
    } else {
        ("text/csv; charset=utf-8", "csv")
    };
    let name = if summary {
        format!("experiment-{id}-summary.{ext}")
    } else {
        format!("experiment-{id}.{ext}")
    };
    let body = match (xlsx, summary) {
        (false, false) => streamed(s.services.exports.export_assignments_csv(&p, id)?),
        (true, false) => streamed(s.services.exports.export_assignments_xlsx(&p, id)?),
        (false, true) => Body::from(s.services.exports.export_summary_csv(&p, id)?),
        (true, true) => Body::from(s.services.exports.export_summary_xlsx(&p, id)?),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

/// A response body fed by an export running on a blocking thread. The stream is fused: the
/// gzip layer polls a body once more after its end (tower-http#732, for any client sending
/// `Accept-Encoding: gzip`, i.e. every browser), and a bare `unfold` panics when polled then.
fn streamed(rx: crate::service::exports::Chunks) -> axum::body::Body {
    use futures_util::StreamExt;
    axum::body::Body::from_stream(
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        })
        .fuse(),
    )
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    #[test]
    fn every_bad_limit_states_the_same_range() {
        let page =
            |limit: &str| super::Page { limit: Some(limit.into()), offset: None, status: None };
        for bad in ["-1", "0", "501", "x", "1.5", ""] {
            let e = super::paging(&page(bad)).unwrap_err();
            assert_eq!(e.message, "limit: must be a whole number from 1 to 500", "{bad:?}");
        }
        assert_eq!(super::paging(&page("1")).unwrap(), (1, 0));
        assert_eq!(super::paging(&page("500")).unwrap(), (500, 0));
    }

    #[tokio::test]
    async fn a_streamed_export_stays_ended_when_polled_again() {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tx.send(Ok(b"user_id\n".to_vec())).await.unwrap();
        drop(tx);
        let mut body = super::streamed(rx);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"user_id\n");
        assert!(body.frame().await.is_none());
        // What tower-http's compression does after the end: it must not panic.
        assert!(body.frame().await.is_none());
    }
}
