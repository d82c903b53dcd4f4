//! /auth, /users, /api-keys and /installations.

use axum::Json;
use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::HeaderName;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{ApiJson, Auth, ClientIp};
use super::{ApiResult, AppState};
use crate::error::{AppError, Code};
use crate::service::accounts::{
    ApiKeyList, AuthStatus, Installation, Me, NewApiKey, NewUser, TokenAnswer, UserChange,
    UserList, UserView,
};
use crate::service::blocking;
use crate::service::notifications::PrefsChange;
use crate::store::records::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/token", post(token))
        .route("/auth/me", get(me).patch(patch_me))
        .route("/auth/status", get(status))
        .route("/users", post(create_user).get(list_users))
        .route("/users/{id}", patch(patch_user).delete(remove_user))
        .route("/users/{id}/password", post(reset_password))
        .route("/api-keys", post(create_key).get(list_keys))
        .route("/api-keys/{id}", delete(revoke_key))
        .route("/installations", get(installations))
}

/// The body of POST /auth/register and POST /users (`role` for admins only).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `admin` or `member`; checked after the caller's own role, so a member learns only
    /// that the call needs an admin.
    #[serde(default)]
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
}

async fn register(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(b): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    s.limits.login.check(&ip.to_string())?;
    if b.role.is_some() {
        return Err(AppError::validation("role", "cannot be chosen when registering"));
    }
    let new = NewUser {
        email: b.email,
        password: b.password,
        name: b.name,
        role: None,
        may_be_admin: true,
    };
    let u = s.services.accounts.create_user(new, true, "").await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&u))))
}

/// The body of POST /auth/token (or the form `username=&password=`).
#[derive(Deserialize, ToSchema)]
pub struct TokenBody {
    #[serde(alias = "username")]
    pub email: String,
    pub password: String,
}

/// Headers of an answer that carries a token: no cache, shared or private, may keep it
/// (RFC 6749 §5.1; `Pragma` for HTTP/1.0 caches).
const NO_STORE: [(HeaderName, &str); 2] = [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")];

/// JSON `{email, password}` or the OAuth2 password grant's form `username=&password=`.
async fn token(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> ApiResult<([(HeaderName, &'static str); 2], Json<TokenAnswer>)> {
    s.limits.login.check(&ip.to_string())?;
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body: TokenBody = if ct.starts_with("application/x-www-form-urlencoded") {
        let bytes = super::extract::read_body(req.into_body(), &s.services.config.server).await?;
        let form: Vec<(String, String)> = serde_urlencoded_pairs(&bytes);
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        TokenBody {
            email: get("username")
                .or_else(|| get("email"))
                .ok_or_else(|| AppError::validation("username", "is required"))?,
            password: get("password")
                .ok_or_else(|| AppError::validation("password", "is required"))?,
        }
    } else {
        ApiJson::<TokenBody>::from_request(req, &s).await?.0
    };
    let svc = s.services.clone();
    Ok((NO_STORE, Json(blocking(move || svc.accounts.login(&body.email, &body.password)).await?)))
}

/// Decodes `application/x-www-form-urlencoded` without another dependency: axum's `Form`
/// would answer rejections in its own format.
fn serde_urlencoded_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                },
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(bytes)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

async fn me(Auth(p): Auth) -> Json<Me> {
    Json(Me {
        user: UserView::from(&p.user),
        site_key: p.user.site_key.clone(),
        notifications: p.user.notifications,
    })
}

/// The body of PATCH /auth/me: what the caller changes about themselves.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MePatchBody {
    /// Email switches to change; the ones left out stay as they are.
    #[serde(default)]
    pub notifications: Option<PrefsChange>,
}

async fn patch_me(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<MePatchBody>,
) -> ApiResult<Json<Me>> {
    let notifications = match b.notifications {
        Some(c) => s.services.notifications.set_prefs(&p, c).await?,
        None => p.user.notifications,
    };
    Ok(Json(Me { user: UserView::from(&p.user), site_key: p.user.site_key.clone(), notifications }))
}

/// Public: whether the first-run page should offer to create the admin account.
async fn status(State(s): State<AppState>) -> ApiResult<Json<AuthStatus>> {
    Ok(Json(s.services.accounts.auth_status()?))
}

async fn create_user(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    p.require_admin()?;
    let role = parse_role(b.role.as_deref())?;
    let new =
        NewUser { email: b.email, password: b.password, name: b.name, role, may_be_admin: true };
    let u = s.services.accounts.create_user(new, false, &p.user.email).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&u))))
}

async fn list_users(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<UserList>> {
    Ok(Json(s.services.accounts.list_users(&p)?))
}

/// The body of PATCH /users/{id}: the fields to change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    /// True locks the user out at once (tokens and API keys refused, no login); false lets
    /// them back in with their API keys, but sessions from before stay ended.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// `admin` or `member`.
    #[serde(default)]
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

fn user_id(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::new(Code::UserNotFound, "no such user"))
}

async fn patch_user(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UserPatchBody>,
) -> ApiResult<Json<UserView>> {
    p.require_admin()?;
    let role = parse_role(b.role.as_deref())?;
    let change = UserChange { disabled: b.disabled, role, name: b.name };
    let u = s.services.accounts.patch_user(&p, user_id(&id)?, change).await?;
    Ok(Json(UserView::from(&u)))
}

async fn remove_user(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    p.require_admin()?;
    s.services.accounts.remove_user(&p, user_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of POST /users/{id}/password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// At least 8 characters.
    pub password: String,
}

/// An admin sets a user's password; the user's sessions end (their older tokens get 401).
async fn reset_password(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PasswordBody>,
) -> ApiResult<Json<UserView>> {
    p.require_admin()?;
    let u = s.services.accounts.reset_password(&p, user_id(&id)?, &b.password).await?;
    Ok(Json(UserView::from(&u)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    pub name: String,
}

async fn create_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<KeyBody>,
) -> ApiResult<(StatusCode, Json<NewApiKey>)> {
    Ok((StatusCode::CREATED, Json(s.services.accounts.create_api_key(&p, &b.name).await?)))
}

async fn list_keys(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<ApiKeyList>> {
    Ok(Json(s.services.accounts.list_api_keys(&p)?))
}

async fn revoke_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id =
        Uuid::parse_str(&id).map_err(|_| AppError::new(Code::ApiKeyNotFound, "no such API key"))?;
    s.services.accounts.revoke_api_key(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn installations(State(s): State<AppState>, Auth(p): Auth) -> Json<Installation> {
    Json(s.services.accounts.installation(&p))
}

/// An optional role from a request body; anything but a known role is refused.
fn parse_role(r: Option<&str>) -> ApiResult<Option<Role>> {
    r.map(|r| Role::parse(r).ok_or_else(|| AppError::validation("role", "must be admin or member")))
        .transpose()
}
