//! Accounts, passwords (argon2id), sessions (HS256 JWT) and API keys (stored as SHA-256).

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::catalog::Catalog;
use super::{PublicUrl, blocking, now_ms, rfc3339};
use crate::config::Config;
use crate::error::{AppError, AppResult, Code};
use crate::store::Store;
use crate::store::api::UserStore;
use crate::store::audit::Draft;
use crate::store::records::{ApiKey, Role, User};
use std::sync::Arc;

pub mod secrets;

/// Accounts: users, passwords, sessions and API keys.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    catalog: Arc<Catalog>,
    config: Arc<Config>,
    jwt_secret: Arc<[u8]>,
    public_url: PublicUrl,
}

pub const MIN_PASSWORD: usize = 8;
const API_KEY_PREFIX: &str = "sk_";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    /// The user's `token_version` when issued; tokens from before versions count as 0.
    #[serde(default)]
    ver: u32,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
}

impl Principal {
    pub fn id(&self) -> Uuid {
        self.user.id
    }

    pub fn require_admin(&self) -> AppResult<()> {
        if self.user.role == Role::Admin {
            Ok(())
        } else {
            Err(AppError::new(Code::Forbidden, "this needs an admin account"))
        }
    }
}

/// A user as the API shows it: never a secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    /// Locked out by an admin: cannot log in, and their tokens and API keys are refused.
    pub disabled: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role,
            created_at: rfc3339(u.created_at),
            disabled: u.disabled,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
    pub total: usize,
}

/// GET /auth/me: the caller, with the site key their snippet carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub user: UserView,
    pub site_key: String,
    /// Which events the user is emailed about (`PATCH /auth/me` changes them).
    pub notifications: crate::store::records::NotificationPrefs,
}

/// GET /auth/status: what the first-run page needs to know.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthStatus {
    pub has_users: bool,
    pub open_registration: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Bearer,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenAnswer {
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// A new API key: `key` is shown this once and never again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewApiKey {
    pub id: Uuid,
    pub name: String,
    pub key: String,
    pub prefix: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
    pub total: usize,
}

/// GET /installations: what to paste into a site.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Installation {
    pub site_key: String,
    pub snippet: String,
    pub tracker_url: String,
}

pub struct NewUser {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    pub role: Option<Role>,
    /// False for accounts that must never become the first admin (the demo account).
    pub may_be_admin: bool,
}

fn normalise_email(e: &str) -> AppResult<String> {
    let e = e.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(char::is_whitespace);
    if !valid {
        return Err(AppError::validation("email", "must be an email address"));
    }
    Ok(e)
}

fn check_password(p: &str) -> AppResult<()> {
    if p.chars().count() < MIN_PASSWORD {
        return Err(AppError::validation(
            "password",
            format!("must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if p.len() > 1024 {
        return Err(AppError::validation("password", "must be at most 1024 bytes"));
    }
    if let Some(why) = crate::engine::text::weak_password(p) {
        return Err(AppError::validation("password", why));
    }
    Ok(())
}

/// At most this many argon2 computations at once (each takes ~19 MiB and a core for tens of
/// milliseconds), so a login flood from many addresses cannot exhaust memory. Callers are on
/// blocking threads, so waiting here is fine.
const HASHING_SLOTS: usize = 2;
static HASHING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

fn with_hashing_slot<T>(f: impl FnOnce() -> T) -> T {
    let (lock, cvar) = &HASHING;
    {
        let mut busy = lock.lock().unwrap_or_else(|e| e.into_inner());
        while *busy >= HASHING_SLOTS {
            busy = cvar.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
    }
    let out = f();
    let mut busy = lock.lock().unwrap_or_else(|e| e.into_inner());
    *busy -= 1;
    cvar.notify_one();
    out
}

pub fn hash_password(p: &str) -> AppResult<String> {
    with_hashing_slot(|| hash_password_now(p))
}

fn hash_password_now(p: &str) -> AppResult<String> {
    Argon2::default()
        .hash_password(p.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(format!("password hashing failed: {e}")))
}

fn verify_password(p: &str, hash: &str) -> bool {
    with_hashing_slot(|| {
        PasswordHash::new(hash)
            .map(|h| Argon2::default().verify_password(p.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
}

/// A verifier for unknown emails, so a login takes as long whether or not the email exists.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password_now("not-a-real-password").unwrap_or_default());

fn random_token(prefix: &str, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(b.as_mut_slice());
    format!("{prefix}{}", hex::encode(b))
}

impl Accounts {
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        config: Arc<Config>,
        jwt_secret: Vec<u8>,
        public_url: PublicUrl,
    ) -> Accounts {
        Accounts { store, catalog, config, jwt_secret: jwt_secret.into(), public_url }
    }

    /// Creates a user. `public` is the /auth/register path: allowed for the first user, or
    /// for anyone when open registration is on.
    pub async fn create_user(&self, new: NewUser, public: bool, actor: &str) -> AppResult<User> {
        let email = normalise_email(&new.email)?;
        check_password(&new.password)?;
        let name = new.name.unwrap_or_default().trim().to_string();
        if name.chars().count() > 200 {
            return Err(AppError::validation("name", "must be at most 200 characters"));
        }
        let label = |field: &str, text: &str| {
            crate::engine::text::check_label(field, text)
                .map_err(|i| AppError::validation(i.field, i.message))
        };
        label("email", &email)?;
        label("name", &name)?;
        let only_if_empty = public && !self.config.auth.open_registration;
        if only_if_empty && self.store.admin_exists()? {
            return Err(registration_closed());
        }
        let password = new.password;
        let password_hash = blocking(move || hash_password(&password)).await?;
        let user = User {
            id: Uuid::new_v4(),
            email,
            name,
            role: new.role.unwrap_or(Role::Member),
            password_hash,
            site_key: random_token("site_", 12),
            created_at: now_ms(),
            disabled: false,
            token_version: 0,
            notifications: Default::default(),
        };
        let actor = if actor.is_empty() { user.email.clone() } else { actor.to_string() };
        let user = match self.store.insert_user(user, only_if_empty, new.may_be_admin, actor).await
        {
            Ok(Some(u)) => u,
            Ok(None) => return Err(registration_closed()),
            Err(e) => return Err(e.into()),
        };
        self.catalog.add_site(user.site_key.clone(), user.id);
        tracing::info!(user = %user.id, role = user.role.as_str(), "user created");
        Ok(user)
    }

    /// Checks credentials and issues a token. Blocking (argon2).
    pub fn login(&self, email: &str, password: &str) -> AppResult<TokenAnswer> {
        let email = email.trim().to_lowercase();
        let user = self.store.user_by_email(&email)?;
        let ok = match &user {
            Some(u) => verify_password(password, &u.password_hash),
            None => {
                verify_password(password, &DUMMY_HASH);
                false
            }
        };
        // A disabled account answers as wrong credentials: the caller learns nothing more.
        let Some(user) = user.filter(|u| ok && !u.disabled) else {
            return Err(AppError::new(Code::InvalidCredentials, "wrong email or password"));
        };
        let ttl = self.config.auth.token_ttl_secs;
        let now = (now_ms() / 1000) as u64;
        let claims =
            Claims { sub: user.id.to_string(), iat: now, exp: now + ttl, ver: user.token_version };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.jwt_secret),
        )
        .map_err(|e| AppError::internal(format!("token signing failed: {e}")))?;
        Ok(TokenAnswer { access_token: token, token_type: TokenType::Bearer, expires_in: ttl })
    }

    /// Resolves a bearer token: an API key (`sk_...`) or a session JWT.
    pub async fn authenticate(&self, token: &str) -> AppResult<Principal> {
        let unauthorized = || AppError::new(Code::Unauthorized, "invalid or expired token");
        let (user_id, version, key) = if token.starts_with(API_KEY_PREFIX) {
            let hash = Sha256::digest(token.as_bytes());
            let key = self.store.api_key_by_hash(&hash)?.ok_or_else(unauthorized)?;
            (key.user_id, None, Some(key))
        } else {
            let mut v = Validation::new(Algorithm::HS256);
            v.leeway = 5;
            let data = jsonwebtoken::decode::<Claims>(
                token,
                &DecodingKey::from_secret(&self.jwt_secret),
                &v,
            )
            .map_err(|_| unauthorized())?;
            let id = Uuid::parse_str(&data.claims.sub).map_err(|_| unauthorized())?;
            (id, Some(data.claims.ver), None)
        };
        let user = self.store.user(user_id)?.ok_or_else(unauthorized)?;
        // A disabled user's keys and tokens stop at once; a session token also stops when
        // the user's token version moved on (password change, disable) after it was issued.
        if user.disabled || version.is_some_and(|v| v != user.token_version) {
            return Err(unauthorized());
        }
        if let Some(mut key) = key {
            let now = now_ms();
            // Record use at minute granularity; a write per request would cost a commit.
            if key.last_used_at.is_none_or(|t| now - t > 60_000) {
                key.last_used_at = Some(now);
                self.store.touch_api_key(key).await?;
            }
        }
        Ok(Principal { user })
    }

    pub async fn create_api_key(&self, who: &Principal, name: &str) -> AppResult<NewApiKey> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AppError::validation("name", "must be 1 to 200 characters"));
        }
        crate::engine::text::check_label("name", name)
            .map_err(|i| AppError::validation(i.field, i.message))?;
        let secret = random_token(API_KEY_PREFIX, 24);
        let key = ApiKey {
            id: Uuid::new_v4(),
            user_id: who.id(),
            name: name.to_string(),
            prefix: secret[..API_KEY_PREFIX.len() + 6].to_string(),
            created_at: now_ms(),
            last_used_at: None,
        };
        let hash = Sha256::digest(secret.as_bytes()).to_vec();
        self.store.insert_api_key(key.clone(), hash, who.user.email.clone()).await?;
        tracing::info!(user = %who.id(), key = %key.id, "api key created");
        Ok(NewApiKey {
            id: key.id,
            name: key.name,
            key: secret,
            prefix: key.prefix,
            created_at: rfc3339(key.created_at),
        })
    }

    pub fn list_api_keys(&self, who: &Principal) -> AppResult<ApiKeyList> {
        let items: Vec<ApiKeyView> = self
            .store
            .api_keys(who.id())?
            .into_iter()
            .map(|k| ApiKeyView {
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                created_at: rfc3339(k.created_at),
                last_used_at: k.last_used_at.map(rfc3339),
            })
            .collect();
        Ok(ApiKeyList { total: items.len(), items })
    }

    /// Every user (the caller must be an admin).
    pub fn list_users(&self, who: &Principal) -> AppResult<UserList> {
        who.require_admin()?;
        let items: Vec<UserView> = self.store.users()?.iter().map(UserView::from).collect();
        Ok(UserList { total: items.len(), items })
    }

    pub fn auth_status(&self) -> AppResult<AuthStatus> {
        Ok(AuthStatus {
            has_users: self.store.admin_exists()?,
            open_registration: self.config.auth.open_registration,
        })
    }

    /// Revokes one of the caller's keys, or any user's key when the caller is an admin; a
    /// member asking for another's key learns only that there is no such key.
    pub async fn revoke_api_key(&self, who: &Principal, id: Uuid) -> AppResult<()> {
        let owner = if who.user.role == Role::Admin { None } else { Some(who.id()) };
        if self.store.delete_api_key(owner, id, who.user.email.clone()).await? {
            tracing::info!(user = %who.id(), key = %id, "api key revoked");
            Ok(())
        } else {
            Err(AppError::new(Code::ApiKeyNotFound, "no such API key"))
        }
    }

    pub async fn set_password(&self, email: &str, password: &str, actor: &str) -> AppResult<User> {
        check_password(password)?;
        let u = self.user_by_email_or_404(email)?;
        self.change_password(u, password, actor).await
    }

    /// POST /users/{id}/password (the caller must be an admin): a new password, and the
    /// user's sessions end (their API keys keep working; revoke those separately).
    pub async fn reset_password(
        &self,
        who: &Principal,
        id: Uuid,
        password: &str,
    ) -> AppResult<User> {
        who.require_admin()?;
        check_password(password)?;
        let u = self.store.user(id)?.ok_or_else(user_not_found)?;
        self.change_password(u, password, &who.user.email).await
    }

    async fn change_password(&self, mut u: User, password: &str, actor: &str) -> AppResult<User> {
        let password = password.to_string();
        u.password_hash = blocking(move || hash_password(&password)).await?;
        // The old sessions end with the old password.
        u.token_version = u.token_version.wrapping_add(1);
        let d = Draft::new(u.id, actor, "user.password_changed");
        self.store.update_user(u.clone(), d).await?;
        Ok(u)
    }

    pub async fn set_role(&self, email: &str, role: Role, actor: &str) -> AppResult<User> {
        let u = self.user_by_email_or_404(email)?;
        self.change_user(u, UserChange { role: Some(role), ..UserChange::default() }, actor).await
    }

    /// Enables or disables a user by email (the CLI).
    pub async fn set_disabled(&self, email: &str, disabled: bool, actor: &str) -> AppResult<User> {
        let u = self.user_by_email_or_404(email)?;
        let change = UserChange { disabled: Some(disabled), ..UserChange::default() };
        self.change_user(u, change, actor).await
    }

    /// PATCH /users/{id} (the caller must be an admin).
    pub async fn patch_user(
        &self,
        who: &Principal,
        id: Uuid,
        change: UserChange,
    ) -> AppResult<User> {
        who.require_admin()?;
        let u = self.store.user(id)?.ok_or_else(user_not_found)?;
        self.change_user(u, change, &who.user.email).await
    }

    /// Applies a change, one audit entry per field that changed; refuses (409) to leave no
    /// enabled admin. Disabling also ends the user's sessions: re-enabling brings back their
    /// API keys, not the tokens they held before.
    async fn change_user(&self, mut u: User, c: UserChange, actor: &str) -> AppResult<User> {
        if let Some(name) = &c.name {
            let name = name.trim();
            if name.chars().count() > 200 {
                return Err(AppError::validation("name", "must be at most 200 characters"));
            }
            crate::engine::text::check_label("name", name)
                .map_err(|i| AppError::validation(i.field, i.message))?;
        }
        let mut drafts = Vec::new();
        if let Some(name) = c.name.as_deref().map(str::trim).filter(|n| *n != u.name) {
            u.name = name.to_string();
            drafts.push(Draft::new(u.id, actor, "user.renamed").data(json!({"name": u.name})));
        }
        if let Some(role) = c.role.filter(|r| *r != u.role) {
            u.role = role;
            drafts.push(
                Draft::new(u.id, actor, "user.role_changed").data(json!({"role": role.as_str()})),
            );
        }
        if let Some(disabled) = c.disabled.filter(|d| *d != u.disabled) {
            u.disabled = disabled;
            let action = if disabled {
                u.token_version = u.token_version.wrapping_add(1);
                "user.disabled"
            } else {
                "user.enabled"
            };
            drafts.push(Draft::new(u.id, actor, action));
        }
        if drafts.is_empty() {
            return Ok(u);
        }
        // One commit, one entry: the fields that changed, named in the entry.
        let d = if drafts.len() == 1 {
            drafts.remove(0)
        } else {
            let actions: Vec<&str> = drafts.iter().map(|d| d.action).collect();
            Draft::new(u.id, actor, "user.changed").data(json!({
                "changes": actions,
                "name": u.name,
                "role": u.role.as_str(),
                "disabled": u.disabled,
            }))
        };
        // The store refuses to leave no enabled admin (409 INVALID_TRANSITION).
        self.store.update_user_keeping_an_admin(u.clone(), d).await?;
        tracing::info!(user = %u.id, disabled = u.disabled, role = u.role.as_str(), "user changed");
        Ok(u)
    }

    /// DELETE /users/{id} (the caller must be an admin).
    pub async fn remove_user(&self, who: &Principal, id: Uuid) -> AppResult<User> {
        who.require_admin()?;
        self.remove(id, &who.user.email).await
    }

    /// Removes a user by email (the CLI).
    pub async fn remove_user_by_email(&self, email: &str, actor: &str) -> AppResult<User> {
        let u = self.user_by_email_or_404(email)?;
        self.remove(u.id, actor).await
    }

    /// Deletes the user record with their email, site key and API keys, so their tokens,
    /// keys and tracker snippet stop at once and the email can be registered again; their
    /// experiments and records are kept (unreachable) rather than destroyed by one call.
    async fn remove(&self, id: Uuid, actor: &str) -> AppResult<User> {
        let known = self.store.user(id)?.ok_or_else(user_not_found)?;
        let d = Draft::new(id, actor, "user.removed").data(json!({"email": known.email}));
        // The store refuses to remove the last enabled admin (409 INVALID_TRANSITION).
        let u = self.store.remove_user(id, d).await?.ok_or_else(user_not_found)?;
        self.catalog.remove_site(&u.site_key);
        tracing::info!(user = %u.id, "user removed");
        Ok(u)
    }

    fn user_by_email_or_404(&self, email: &str) -> AppResult<User> {
        self.store
            .user_by_email(&email.trim().to_lowercase())?
            .ok_or_else(|| AppError::new(Code::UserNotFound, format!("no user {email}")))
    }

    pub fn installation(&self, who: &Principal) -> Installation {
        let site_key = &who.user.site_key;
        let base = self.public_url.get();
        Installation {
            site_key: site_key.clone(),
            snippet: format!("<script src=\"{base}/t/{site_key}.js\"></script>"),
            tracker_url: format!("{base}/tracker.js"),
        }
    }
}

/// A change of PATCH /users/{id}: the fields given.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub disabled: Option<bool>,
    pub role: Option<Role>,
    pub name: Option<String>,
}

fn user_not_found() -> AppError {
    AppError::new(Code::UserNotFound, "no such user")
}

fn registration_closed() -> AppError {
    AppError::new(
        Code::RegistrationClosed,
        "registration is closed: an admin can create accounts (POST /api/v1/users or \
         `samplit user create`), or set auth.open_registration = true",
    )
}
