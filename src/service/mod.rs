//! Use-cases that combine the store and the engine, one feature module each (accounts,
//! experiments, tracker, analytics, audit, webhooks, exports, admin). Each feature holds only
//! what it needs, privately; `Services` builds them once and hands them to the HTTP layer and
//! the admin socket, so a CLI command and an API call do the same thing.
//!
//! Shared pieces: the store (through the `store::api` traits), the group-commit writer (the
//! only path for hot writes), the in-memory catalog, and the outbound client.

pub mod accounts;
pub mod admin;
pub mod analytics;
pub mod audit;
pub mod campaigns;
pub mod catalog;
pub mod experiments;
pub mod exports;
pub mod integrations;
pub mod notifications;
pub mod outbound;
pub mod overview;
pub mod tracker;
pub mod webhooks;

// Short paths the rest of the crate has used since before the features had folders.
pub use accounts::secrets;
pub use analytics::simulate;
pub use exports::{csv_dump, pg_export, xlsx};

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::config::Config;
use crate::engine::crypto::StateKey;
use crate::error::{AppError, AppResult};
use crate::store::api::UserStore;
use crate::store::writer::{self, Writer, WriterOptions};
use crate::store::{Store, StoreError};
use catalog::Catalog;

/// Returning visitors kept in memory (about 100 bytes each).
const STICKY_CACHE_ENTRIES: usize = 100_000;

/// The base URL that snippets and scripts point at: `server.public_url`, or the address
/// the listener was bound to.
#[derive(Clone)]
pub struct PublicUrl {
    bound: Arc<OnceLock<String>>,
    config: Arc<Config>,
}

impl PublicUrl {
    pub fn get(&self) -> String {
        self.bound.get().cloned().unwrap_or_else(|| self.config.public_url())
    }
}

/// Every feature, built once at start. Cheap to share: each feature is a handful of `Arc`s.
pub struct Services {
    pub config: Arc<Config>,
    pub accounts: accounts::Accounts,
    pub experiments: experiments::Experiments,
    pub tracker: tracker::Tracker,
    pub campaigns: campaigns::Campaigns,
    pub analytics: analytics::Analysis,
    pub audit: audit::AuditTrail,
    pub webhooks: webhooks::Webhooks,
    pub notifications: notifications::Notifications,
    pub exports: exports::Exports,
    pub admin: admin::Admin,
    pub overview: overview::Overviews,
    pub integrations: integrations::Integrations,
    store: Store,
    writer: Writer,
    catalog: Arc<Catalog>,
    public_url: PublicUrl,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Server-wide counts, every owner together.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub experiments: u64,
    pub running: u64,
    pub visitors: u64,
    pub conversions: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secrets(#[from] secrets::SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting that the mail client refuses (its message names the setting).
    #[error("{0}")]
    Notifications(String),
}

impl Services {
    /// Opens the data dir: secrets, the store (migrating it), the bandit states, the writer,
    /// and the in-memory catalog of experiments and site keys.
    pub async fn open(config: Config) -> Result<Arc<Services>, StartError> {
        let secrets = secrets::load(&config)?;
        let store = Store::open(config.data_dir())?;
        let (key, states, broken) = open_states(&config, &store, &secrets.state)?;
        for exp in &broken {
            tracing::error!(experiment = %exp, "{}", StoreError::StateUnreadable { experiment: *exp });
        }
        let opts = WriterOptions {
            max_batch: config.writer.max_batch,
            max_queue: config.writer.max_queue,
            refresh_interval: Duration::from_millis(config.engine.refresh_interval_ms),
            min_weight_change: config.engine.min_weight_change,
        };
        let (writer, handle) = Writer::start(store.clone(), key, states, broken, opts);
        let catalog = Arc::new(Catalog::default());
        catalog.load(&store)?;
        let config = Arc::new(config);
        let public_url = PublicUrl { bound: Arc::new(OnceLock::new()), config: config.clone() };
        let accounts = accounts::Accounts::new(
            store.clone(),
            catalog.clone(),
            config.clone(),
            secrets.jwt,
            public_url.clone(),
        );
        let analytics = analytics::Analysis::new(
            store.clone(),
            writer.clone(),
            catalog.clone(),
            config.clone(),
        );
        let webhooks = webhooks::Webhooks::new(store.clone(), writer.clone(), config.clone());
        match webhooks.seal_plain_secrets().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(webhooks = n, "sealed plain-text webhook secrets"),
            Err(e) => tracing::error!(error = %e.message, "cannot seal webhook secrets"),
        }
        let notifications = notifications::Notifications::new(
            store.clone(),
            analytics.clone(),
            &config,
            public_url.clone(),
        )
        .map_err(StartError::Notifications)?;
        let experiments = experiments::Experiments::new(
            store.clone(),
            writer.clone(),
            catalog.clone(),
            config.clone(),
            webhooks.clone(),
            notifications.clone(),
        );
        let tracker = tracker::Tracker::new(
            store.clone(),
            writer.clone(),
            catalog.clone(),
            public_url.clone(),
            STICKY_CACHE_ENTRIES,
        );
        let campaigns = campaigns::Campaigns::new(
            store.clone(),
            writer.clone(),
            catalog.clone(),
            tracker.clone(),
            public_url.clone(),
            secrets.link,
        );
        let exports = exports::Exports::new(store.clone(), catalog.clone(), analytics.clone());
        let admin = admin::Admin::new(admin::Parts {
            store: store.clone(),
            writer: writer.clone(),
            catalog: catalog.clone(),
            config: config.clone(),
            accounts: accounts.clone(),
            experiments: experiments.clone(),
            tracker: tracker.clone(),
            campaigns: campaigns.clone(),
            analytics: analytics.clone(),
            exports: exports.clone(),
        });
        let integrations = integrations::Integrations::new(config.clone());
        let services = Arc::new(Services {
            config,
            accounts,
            experiments,
            tracker,
            campaigns,
            analytics,
            audit: audit::AuditTrail::new(store.clone()),
            webhooks,
            notifications,
            exports,
            admin,
            overview: overview::Overviews::new(store.clone(), writer.clone(), catalog.clone()),
            integrations,
            store,
            writer,
            catalog,
            public_url,
            writer_thread: Mutex::new(Some(handle)),
        });
        for exp in services.catalog.all() {
            if exp.exp.status != crate::engine::model::Status::Draft
                && let Err(e) = services.writer.register(exp.exp.id, exp.meta()).await
            {
                tracing::error!(experiment = %exp.exp.id, error = %e, "experiment not serving");
            }
        }
        Ok(services)
    }

    /// Records the address the server listens on, for snippets, when no public URL is set.
    pub fn set_listen_addr(&self, addr: std::net::SocketAddr) {
        let url = if self.config.server.public_url.is_empty() {
            format!("http://{addr}")
        } else {
            self.config.public_url()
        };
        let _ = self.public_url.bound.set(url);
    }

    pub fn public_url(&self) -> String {
        self.public_url.get()
    }

    /// Whether the store answers a read and can write (no I/O failure it has not recovered
    /// from yet).
    pub fn ready(&self) -> AppResult<()> {
        if !self.store.healthy() {
            return Err(StoreError::Unavailable("recovering from an I/O error".into()).into());
        }
        if let Err(e) = self.store.user_count() {
            self.store.note(&e);
            return Err(e.into());
        }
        Ok(())
    }

    /// Server-wide counts for `/metrics`.
    pub fn totals(&self) -> Totals {
        let all = self.catalog.all();
        let mut t = Totals {
            experiments: all.len() as u64,
            running: all.iter().filter(|e| e.serving()).count() as u64,
            ..Totals::default()
        };
        for e in &all {
            if let Some(snap) = self.writer.live().get(e.exp.id) {
                t.visitors += snap.state.visitors();
                t.conversions += snap.state.conversions();
            }
        }
        t
    }

    /// The webhook delivery worker and results watcher, for the life of the server.
    pub async fn run_webhooks(&self, client: outbound::Client) {
        webhooks::worker::run(
            self.webhooks.clone(),
            self.catalog.clone(),
            self.analytics.clone(),
            self.notifications.clone(),
            client,
        )
        .await
    }

    /// The email worker, for the life of the server (returns at once when email is off).
    pub async fn run_notifications(&self) {
        notifications::worker::run(self.notifications.clone()).await
    }

    /// Stops the writer after it has committed everything queued, and waits for it.
    pub async fn shutdown(&self) {
        if let Err(e) = self.writer.stop().await {
            tracing::warn!(error = %e, "writer already stopped");
        }
        let handle = self.writer_thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

type States = (
    StateKey,
    std::collections::HashMap<uuid::Uuid, crate::store::records::BanditState>,
    std::collections::HashSet<uuid::Uuid>,
);

/// Opens the sealed bandit states. A `samplit keys rotate` interrupted after re-sealing but
/// before installing the new key leaves `state.key.next`: if that key opens more states,
/// the rotation is finished here; otherwise the leftover is removed.
fn open_states(config: &Config, store: &Store, state_key: &[u8; 32]) -> Result<States, StartError> {
    let key = StateKey::new(state_key);
    let (states, broken) = writer::load_states(store, &key)?;
    let next = config.data_dir().join(format!("{}.next", secrets::STATE_FILE));
    if !config.state.encryption_key.is_empty() || !next.exists() {
        return Ok((key, states, broken));
    }
    let candidate = std::fs::read_to_string(&next).ok().and_then(|h| secrets::parse_key(&h));
    if let Some(k) = candidate {
        let nk = StateKey::new(&k);
        let (s2, b2) = writer::load_states(store, &nk)?;
        if b2.len() < broken.len() {
            let installed = config.data_dir().join(secrets::STATE_FILE);
            std::fs::rename(&next, &installed).map_err(|e| secrets::SecretError::Io {
                path: installed.display().to_string(),
                source: e,
            })?;
            tracing::warn!("finished an interrupted key rotation");
            return Ok((nk, s2, b2));
        }
    }
    let _ = std::fs::remove_file(&next);
    Ok((key, states, broken))
}

pub fn now_ms() -> i64 {
    writer::now_ms()
}

/// How far long admin work got: sent over the admin socket as it happens, drawn as a
/// progress bar by the CLI.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProgressEvent {
    /// What is being done now ("assignments", "connecting to ...").
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Rows written so far, where the work writes rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

impl ProgressEvent {
    pub fn phase(phase: impl Into<String>) -> ProgressEvent {
        ProgressEvent { phase: phase.into(), ..ProgressEvent::default() }
    }
}

/// Where long admin work reports how far it got.
pub type Progress = dyn Fn(ProgressEvent) + Send + Sync;

pub use crate::engine::time::rfc3339;

/// Runs blocking store work (redb I/O, argon2) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::internal(format!("worker failed: {e}")))?
}
