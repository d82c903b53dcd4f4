//! The store interface: the operations the services need, in domain types (records, drafts,
//! deliveries; never a redb type), grouped by the feature that uses them. `Store` (redb) is
//! its one implementation today; a PostgreSQL one for several nodes is planned.
//!
//! **The blocking rule.** Every operation that commits returns a future that runs the commit
//! on a blocking thread (`spawn_blocking`), so an async handler cannot stall a runtime
//! worker on an fsync: the interface makes it impossible to call one synchronously. Reads
//! are plain functions: redb reads are memory-mapped and take microseconds, and the long
//! ones (scans, pages, backups) are only called from blocking threads already. Hot writes
//! (assignments, conversions, bandit state) do not appear here at all: they go through the
//! group-commit writer (`store::writer`), the only path for them on any backend.
//!
//! **What assumes one process holds all state** (what a multi-node backend must replace):
//! - the writer owns every bandit state and publishes weights in memory (`writer::Live`);
//!   several nodes need one elected refresher that publishes weights to the others;
//! - the catalog of experiments and site keys is loaded once and updated by the node that
//!   made the change (`service::catalog`); other nodes need an invalidation (LISTEN/NOTIFY);
//! - the sticky cache in front of `assignment` is per process and never invalidated, which
//!   is only right because an assignment never changes once written;
//! - experiment changes are serialised by an in-process mutex (`exp_writes`), and the audit
//!   chain's head is read and appended inside one local transaction;
//! - once-only webhook events (`enqueue` with a mark) rely on the local transaction too, as
//!   does the email outbox's one email per event and owner (`NotificationStore`);
//! - commit sequence numbers (`commit_seq`, used by exports) are one local counter;
//! - rate limits, the simulator's one-at-a-time permit and the admin socket are per process.

use std::future::Future;
use std::path::Path;
use uuid::Uuid;

use super::audit::{Broken, Draft};
use super::notifications::Email;
use super::records::{ApiKey, AssignmentRec, ConversionRec, User};
use super::scan::{AssignmentKey, ConversionKey, Page, SeqRange};
use super::webhooks::{Delivery, Webhook};
use super::{Store, StoreError, StoreResult};
use crate::engine::model::Experiment;

/// Runs a commit off the async workers.
fn committing<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> StoreResult<T> + Send + 'static,
) -> impl Future<Output = StoreResult<T>> + Send + 'static {
    let store = store.clone();
    async move {
        tokio::task::spawn_blocking(move || {
            let r = f(&store);
            // A full disk: the writer thread reopens the file once a test write succeeds.
            if let Err(e) = &r {
                store.note(e);
            }
            r
        })
        .await
        .map_err(|e| StoreError::Db(format!("store task failed: {e}")))?
    }
}

/// Users and their API keys.
pub trait UserStore {
    fn admin_exists(&self) -> StoreResult<bool>;
    fn user_count(&self) -> StoreResult<u64>;
    fn user(&self, id: Uuid) -> StoreResult<Option<User>>;
    fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    fn users(&self) -> StoreResult<Vec<User>>;
    /// Every site key and its owner, for the catalog.
    fn site_keys(&self) -> StoreResult<Vec<(String, Uuid)>>;
    fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKey>>;
    fn api_keys(&self, user: Uuid) -> StoreResult<Vec<ApiKey>>;

    /// Inserts a user (audited). With `only_if_no_admin`, answers None when an admin exists
    /// (first-run registration); a taken email is `StoreError::EmailTaken`.
    fn insert_user(
        &self,
        user: User,
        only_if_no_admin: bool,
        may_be_admin: bool,
        actor: String,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send + 'static;
    fn update_user(
        &self,
        user: User,
        change: Draft,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static;
    /// Saves a changed user (audited) unless no enabled admin would be left:
    /// `StoreError::LastAdmin`, decided in the transaction.
    fn update_user_keeping_an_admin(
        &self,
        user: User,
        change: Draft,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static;
    /// Deletes a user, their email, site key and API keys (audited); None when there is no
    /// such user, `StoreError::LastAdmin` for the last enabled admin.
    fn remove_user(
        &self,
        id: Uuid,
        change: Draft,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send + 'static;
    fn insert_api_key(
        &self,
        key: ApiKey,
        hash: Vec<u8>,
        actor: String,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static;
    /// Records when a key was last used.
    fn touch_api_key(&self, key: ApiKey) -> impl Future<Output = StoreResult<()>> + Send + 'static;
    /// Whether `user` had a key `id` (now revoked); with None, whether anyone had (an
    /// admin revoking another user's key).
    fn delete_api_key(
        &self,
        user: Option<Uuid>,
        id: Uuid,
        actor: String,
    ) -> impl Future<Output = StoreResult<bool>> + Send + 'static;
}

/// Experiment definitions.
pub trait ExperimentStore {
    fn experiments(&self) -> StoreResult<Vec<Experiment>>;
    /// Saves a definition with its audit entry and the webhook deliveries that report the
    /// change: all or none.
    fn put_experiment(
        &self,
        exp: Experiment,
        change: Draft,
        events: Vec<Delivery>,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static;
    /// Deletes a draft and its state for good (audited).
    fn delete_experiment(
        &self,
        id: Uuid,
        change: Draft,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static;
}

/// What the hot path and the analytics read of the records the writer wrote.
pub trait RecordStore {
    /// A visitor's sticky assignment.
    fn assignment(&self, exp: Uuid, user: &str) -> StoreResult<Option<AssignmentRec>>;
    /// Every assignment of an experiment with its primary conversion; `f` answers whether
    /// to go on. Long: call from a blocking thread.
    fn scan_assignments(
        &self,
        exp: Uuid,
        f: &mut dyn FnMut(&str, &AssignmentRec, Option<&ConversionRec>) -> bool,
    ) -> StoreResult<()>;
    /// Hourly counters: `(hour, arm, allocations, conversions)`.
    fn timeseries(&self, exp: Uuid) -> StoreResult<Vec<(i64, u32, u64, u64)>>;
    /// The hourly counters from `from_hour` (hours since the epoch) on.
    fn timeseries_since(&self, exp: Uuid, from_hour: i64)
    -> StoreResult<Vec<(i64, u32, u64, u64)>>;
}

/// Webhook subscriptions and the delivery queue.
pub trait WebhookStore {
    fn webhooks(&self, owner: Option<Uuid>) -> StoreResult<Vec<Webhook>>;
    fn webhook(&self, id: Uuid) -> StoreResult<Option<Webhook>>;
    fn deliveries(&self, webhook: Uuid) -> StoreResult<Vec<Delivery>>;
    fn due_deliveries(&self, now: i64) -> StoreResult<Vec<Delivery>>;
    fn delete_webhook(&self, id: Uuid) -> impl Future<Output = StoreResult<()>> + Send + 'static;
    /// Queues deliveries; with `mark`, only the first time that `(experiment, event)` is
    /// marked. Answers whether anything was queued.
    fn enqueue(
        &self,
        deliveries: Vec<Delivery>,
        mark: Option<(Uuid, String)>,
    ) -> impl Future<Output = StoreResult<bool>> + Send + 'static;
    fn save_delivery(&self, d: Delivery) -> impl Future<Output = StoreResult<()>> + Send + 'static;
}

/// The email outbox. Emails are queued only with the change or one-off mark that raised
/// their event, so one event is one email per owner.
pub trait NotificationStore {
    /// As `ExperimentStore::put_experiment`, also queueing `emails` (each only once per
    /// experiment, event and owner); answers how many were new.
    fn put_experiment_notifying(
        &self,
        exp: Experiment,
        change: Draft,
        events: Vec<Delivery>,
        emails: Vec<Email>,
    ) -> impl Future<Output = StoreResult<usize>> + Send + 'static;
    /// Marks a one-off event and queues its deliveries and emails; None when it was
    /// marked already (nothing queued), else how many emails were new.
    fn enqueue_event(
        &self,
        deliveries: Vec<Delivery>,
        emails: Vec<Email>,
        exp: Uuid,
        event: String,
    ) -> impl Future<Output = StoreResult<Option<usize>>> + Send + 'static;
    fn event_marked(&self, exp: Uuid, event: &str) -> StoreResult<bool>;
    fn due_emails(&self, now: i64) -> StoreResult<Vec<Email>>;
    fn emails_of(&self, owner: Uuid) -> StoreResult<Vec<Email>>;
    fn save_email(&self, e: Email) -> impl Future<Output = StoreResult<()>> + Send + 'static;
}

/// The audit trail (entries are appended by the commits above, never on their own).
pub trait AuditStore {
    /// An owner's entries, oldest first: `(page, total, head)`.
    fn audit_entries(
        &self,
        owner: Uuid,
        experiment: Option<Uuid>,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<serde_json::Value>, usize, String)>;
    /// Recomputes every chain: `(entries checked, first broken entry of each chain)`.
    fn verify_audit(&self) -> StoreResult<(u64, Vec<Broken>)>;
    /// The same check of one owner's chain.
    fn verify_audit_of(&self, owner: Uuid) -> StoreResult<(u64, Vec<Broken>)>;
    fn audit_heads(&self) -> StoreResult<Vec<(u128, u64)>>;
    fn audit_page(
        &self,
        owner: u128,
        after_seq: u64,
        max_rows: usize,
    ) -> StoreResult<Vec<(u64, serde_json::Value)>>;
}

/// Whole-data-set reads for exports and backups.
pub trait ExportStore {
    /// Which data set this is: a backup or restore gets a new one.
    fn instance_id(&self) -> StoreResult<Uuid>;
    /// The last group commit's number; records carry the commit that wrote them.
    fn commit_seq(&self) -> StoreResult<u64>;
    fn export_row_counts(&self) -> StoreResult<(u64, u64, u64)>;
    fn assignments_page(
        &self,
        after: Option<&AssignmentKey>,
        range: SeqRange,
        max_rows: usize,
        max_scan: u64,
    ) -> StoreResult<Page<AssignmentKey, AssignmentRec>>;
    fn conversions_page(
        &self,
        after: Option<&ConversionKey>,
        range: SeqRange,
        max_rows: usize,
        max_scan: u64,
    ) -> StoreResult<Page<ConversionKey, ConversionRec>>;
    fn row_count(&self) -> StoreResult<u64>;
    /// A consistent copy of the data file in `dir`, while writes go on.
    fn backup_to(&self, dir: &Path, progress: &mut dyn FnMut(u64)) -> StoreResult<u64>;
    fn renew_instance_id(&self) -> impl Future<Output = StoreResult<()>> + Send + 'static;
}

impl UserStore for Store {
    fn admin_exists(&self) -> StoreResult<bool> {
        Store::admin_exists(self)
    }
    fn user_count(&self) -> StoreResult<u64> {
        Store::user_count(self)
    }
    fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        Store::user(self, id)
    }
    fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        Store::user_by_email(self, email)
    }
    fn users(&self) -> StoreResult<Vec<User>> {
        Store::users(self)
    }
    fn site_keys(&self) -> StoreResult<Vec<(String, Uuid)>> {
        Store::site_keys(self)
    }
    fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKey>> {
        Store::api_key_by_hash(self, hash)
    }
    fn api_keys(&self, user: Uuid) -> StoreResult<Vec<ApiKey>> {
        Store::api_keys(self, user)
    }
    fn insert_user(
        &self,
        user: User,
        only_if_no_admin: bool,
        may_be_admin: bool,
        actor: String,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send + 'static {
        committing(self, move |s| s.insert_user(user, only_if_no_admin, may_be_admin, &actor))
    }
    fn update_user(
        &self,
        user: User,
        change: Draft,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, move |s| s.update_user(&user, &change))
    }
    fn update_user_keeping_an_admin(
        &self,
        user: User,
        change: Draft,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, move |s| s.update_user_keeping_an_admin(&user, &change))
    }
    fn remove_user(
        &self,
        id: Uuid,
        change: Draft,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send + 'static {
        committing(self, move |s| s.remove_user(id, &change))
    }
    fn insert_api_key(
        &self,
        key: ApiKey,
        hash: Vec<u8>,
        actor: String,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, move |s| s.insert_api_key(&key, &hash, &actor))
    }
    fn touch_api_key(&self, key: ApiKey) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, move |s| s.touch_api_key(&key))
    }
    fn delete_api_key(
        &self,
        user: Option<Uuid>,
        id: Uuid,
        actor: String,
    ) -> impl Future<Output = StoreResult<bool>> + Send + 'static {
        committing(self, move |s| s.delete_api_key(user, id, &actor))
    }
}

impl ExperimentStore for Store {
    fn experiments(&self) -> StoreResult<Vec<Experiment>> {
        Store::experiments(self)
    }
    fn put_experiment(
        &self,
        exp: Experiment,
        change: Draft,
        events: Vec<Delivery>,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, move |s| s.put_experiment(&exp, &change, &events))
    }
    fn delete_experiment(
        &self,
        id: Uuid,
        change: Draft,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, move |s| s.delete_experiment(id, &change))
    }
}

impl RecordStore for Store {
    fn assignment(&self, exp: Uuid, user: &str) -> StoreResult<Option<AssignmentRec>> {
        Store::assignment(self, exp, user)
    }
    fn scan_assignments(
        &self,
        exp: Uuid,
        f: &mut dyn FnMut(&str, &AssignmentRec, Option<&ConversionRec>) -> bool,
    ) -> StoreResult<()> {
        Store::scan_assignments(self, exp, f)
    }
    fn timeseries(&self, exp: Uuid) -> StoreResult<Vec<(i64, u32, u64, u64)>> {
        Store::timeseries(self, exp)
    }
    fn timeseries_since(
        &self,
        exp: Uuid,
        from_hour: i64,
    ) -> StoreResult<Vec<(i64, u32, u64, u64)>> {
        Store::timeseries_since(self, exp, from_hour)
    }
}

impl WebhookStore for Store {
    fn webhooks(&self, owner: Option<Uuid>) -> StoreResult<Vec<Webhook>> {
        Store::webhooks(self, owner)
    }
    fn webhook(&self, id: Uuid) -> StoreResult<Option<Webhook>> {
        Store::webhook(self, id)
    }
    fn deliveries(&self, webhook: Uuid) -> StoreResult<Vec<Delivery>> {
        Store::deliveries(self, webhook)
    }
    fn due_deliveries(&self, now: i64) -> StoreResult<Vec<Delivery>> {
        Store::due_deliveries(self, now)
    }
    fn delete_webhook(&self, id: Uuid) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, move |s| s.delete_webhook(id))
    }
    fn enqueue(
        &self,
        deliveries: Vec<Delivery>,
        mark: Option<(Uuid, String)>,
    ) -> impl Future<Output = StoreResult<bool>> + Send + 'static {
        committing(self, move |s| {
            s.enqueue(&deliveries, mark.as_ref().map(|(e, name)| (*e, name.as_str())))
        })
    }
    fn save_delivery(&self, d: Delivery) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, move |s| s.save_delivery(&d))
    }
}

impl NotificationStore for Store {
    fn put_experiment_notifying(
        &self,
        exp: Experiment,
        change: Draft,
        events: Vec<Delivery>,
        emails: Vec<Email>,
    ) -> impl Future<Output = StoreResult<usize>> + Send + 'static {
        committing(self, move |s| s.put_experiment_notifying(&exp, &change, &events, &emails))
    }
    fn enqueue_event(
        &self,
        deliveries: Vec<Delivery>,
        emails: Vec<Email>,
        exp: Uuid,
        event: String,
    ) -> impl Future<Output = StoreResult<Option<usize>>> + Send + 'static {
        committing(self, move |s| s.enqueue_event(&deliveries, &emails, exp, &event))
    }
    fn event_marked(&self, exp: Uuid, event: &str) -> StoreResult<bool> {
        Store::event_marked(self, exp, event)
    }
    fn due_emails(&self, now: i64) -> StoreResult<Vec<Email>> {
        Store::due_emails(self, now)
    }
    fn emails_of(&self, owner: Uuid) -> StoreResult<Vec<Email>> {
        Store::emails_of(self, owner)
    }
    fn save_email(&self, e: Email) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, move |s| s.save_email(&e))
    }
}

impl AuditStore for Store {
    fn audit_entries(
        &self,
        owner: Uuid,
        experiment: Option<Uuid>,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<serde_json::Value>, usize, String)> {
        Store::audit_entries(self, owner, experiment, offset, limit)
    }
    fn verify_audit(&self) -> StoreResult<(u64, Vec<Broken>)> {
        Store::verify_audit(self)
    }
    fn verify_audit_of(&self, owner: Uuid) -> StoreResult<(u64, Vec<Broken>)> {
        Store::verify_audit_of(self, owner)
    }
    fn audit_heads(&self) -> StoreResult<Vec<(u128, u64)>> {
        Store::audit_heads(self)
    }
    fn audit_page(
        &self,
        owner: u128,
        after_seq: u64,
        max_rows: usize,
    ) -> StoreResult<Vec<(u64, serde_json::Value)>> {
        Store::audit_page(self, owner, after_seq, max_rows)
    }
}

impl ExportStore for Store {
    fn instance_id(&self) -> StoreResult<Uuid> {
        Store::instance_id(self)
    }
    fn commit_seq(&self) -> StoreResult<u64> {
        Store::commit_seq(self)
    }
    fn export_row_counts(&self) -> StoreResult<(u64, u64, u64)> {
        Store::export_row_counts(self)
    }
    fn assignments_page(
        &self,
        after: Option<&AssignmentKey>,
        range: SeqRange,
        max_rows: usize,
        max_scan: u64,
    ) -> StoreResult<Page<AssignmentKey, AssignmentRec>> {
        Store::assignments_page(self, after, range, max_rows, max_scan)
    }
    fn conversions_page(
        &self,
        after: Option<&ConversionKey>,
        range: SeqRange,
        max_rows: usize,
        max_scan: u64,
    ) -> StoreResult<Page<ConversionKey, ConversionRec>> {
        Store::conversions_page(self, after, range, max_rows, max_scan)
    }
    fn row_count(&self) -> StoreResult<u64> {
        Store::row_count(self)
    }
    fn backup_to(&self, dir: &Path, progress: &mut dyn FnMut(u64)) -> StoreResult<u64> {
        Store::backup_to(self, dir, progress)
    }
    fn renew_instance_id(&self) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        committing(self, |s| s.renew_instance_id())
    }
}
