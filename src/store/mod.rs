//! The embedded store: one redb file. The service layer talks to it through the narrow set
//! of operations below (domain records in, domain records out, no redb types), so another
//! backend can stand behind the same calls. Hot writes go only through `writer`.

pub mod api;
pub mod audit;
pub mod backup;
pub mod campaigns;
pub mod notifications;
pub mod records;
pub mod scan;
pub mod tables;
pub mod usage;
pub mod webhooks;
pub mod writer;

use records::{ApiKey, AssignmentRec, ConversionRec, User};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tables::*;
use uuid::Uuid;

use crate::engine::model::Experiment;

pub const DB_FILE: &str = "samplit.redb";
/// The schema this build writes. Opening an older file runs the steps in `migrate`.
pub const SCHEMA_VERSION: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {0} is in use by another Samplit process (a running server?); \
         stop it or use another --data-dir"
    )]
    Locked(PathBuf),
    #[error("store error: {0}")]
    Db(String),
    /// The data file fails redb's integrity check (pages altered outside redb): serving it
    /// could answer wrong data or fail requests at random.
    #[error(
        "the data file {} is damaged ({detail}) and is not served; stop any process using it \
         and restore the latest backup with `samplit restore BACKUP --force` (the damaged file \
         is kept aside)",
        path.display()
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("corrupt record in {table}: {message}")]
    Corrupt { table: &'static str, message: String },
    #[error(
        "the bandit state of experiment {experiment} cannot be decrypted (wrong state key or \
         tampered record); run `samplit repair --experiment {experiment}` to rebuild it from \
         the assignment and conversion records"
    )]
    StateUnreadable { experiment: Uuid },
    #[error(
        "the data file was written by a newer Samplit (schema {found}, this build knows {known})"
    )]
    TooNew { found: u32, known: u32 },
    /// An assignment or conversion for an experiment the writer does not serve.
    #[error("experiment {experiment} is not running")]
    NotRunning { experiment: Uuid },
    #[error("{email} is already registered")]
    EmailTaken { email: String },
    /// The change would leave no enabled admin.
    #[error("the last admin can be neither disabled, demoted nor removed")]
    LastAdmin,
    /// A copy's target (a backup's data file) is there already.
    #[error("{} already exists", .0.display())]
    AlreadyExists(PathBuf),
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("{0} records are waiting to be written; try again shortly")]
    Busy(usize),
    /// The data file cannot be written (a full disk, an I/O error): the writer reopens it
    /// as soon as a test write succeeds again.
    #[error("the store cannot write right now ({0}); try again shortly")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                if io_failed(&e) {
                    StoreError::Unavailable(e.to_string())
                } else {
                    StoreError::Db(e.to_string())
                }
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

/// Whether a redb error means the file could not be read or written (a full disk, an I/O
/// error, or the state redb latches after one): the store is unavailable until reopened.
fn io_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    use redb::{CommitError as C, Error as E, StorageError as S};
    let storage = |s: &S| matches!(s, S::Io(_) | S::PreviousIo | S::DatabaseClosed);
    if let Some(s) = e.downcast_ref::<S>() {
        return storage(s);
    }
    if let Some(e) = e.downcast_ref::<E>() {
        return matches!(e, E::Io(_) | E::PreviousIo | E::DatabaseClosed);
    }
    if let Some(e) = e.downcast_ref::<C>() {
        return matches!(e, C::Storage(s) if storage(s)) || matches!(e, C::TransactionPoisoned);
    }
    if let Some(redb::TransactionError::Storage(s)) = e.downcast_ref::<redb::TransactionError>() {
        return storage(s);
    }
    if let Some(redb::TableError::Storage(s)) = e.downcast_ref::<redb::TableError>() {
        return storage(s);
    }
    if let Some(redb::CompactionError::Storage(s)) = e.downcast_ref::<redb::CompactionError>() {
        return storage(s);
    }
    false
}

pub(crate) fn corrupt(table: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table, message: e.to_string() }
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(table: &'static str, b: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(b).map_err(|e| corrupt(table, e))
}

#[derive(Clone)]
pub struct Store {
    /// The open file; None only while `reopen` swaps it.
    db: Arc<RwLock<Option<Arc<Database>>>>,
    /// False from an I/O failure until the writer has reopened the file and written again.
    healthy: Arc<AtomicBool>,
    path: PathBuf,
}

/// The data file holds password hashes and sealed secrets: it is created 0600, and an
/// existing one more open than that is narrowed, with a warning.
fn private_file(path: &Path) -> StoreResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |e: std::io::Error| StoreError::Db(format!("{}: {e}", path.display()));
        match std::fs::metadata(path) {
            Ok(m) => {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "the data file was readable by others (mode {mode:o}); setting it to 600"
                    );
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(err)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Created empty here with the mode; redb then initialises the empty file.
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(err)?;
            }
            Err(e) => return Err(err(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A bounded page cache keeps memory flat however large the file grows. redb checks and
/// repairs a file that was not closed cleanly on its own; a clean file altered since (a bad
/// disk, a stray write) would be trusted and could panic on read, so every open verifies the
/// checksum of every committed page (it reads the whole file; about 10 ms on a 1.6 MB file,
/// see README "Storage growth").
fn open_db(path: &Path) -> Result<Database, redb::DatabaseError> {
    Database::builder()
        .set_cache_size(32 * 1024 * 1024)
        .set_check_integrity_on_open(true)
        .create(path)
}

impl Store {
    /// Opens (or creates) `<dir>/samplit.redb` and brings its schema up to date.
    pub fn open(dir: &Path) -> StoreResult<Store> {
        // A data dir we create is private to its owner: it holds the secrets and the admin
        // socket, which is then never reachable by others even before its own chmod.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(dir)
            .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        private_file(&path)?;
        let db = open_db(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(dir.to_path_buf()),
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
                StoreError::Damaged { path: path.clone(), detail }
            }
            other => StoreError::Db(other.to_string()),
        })?;
        let store = Store {
            db: Arc::new(RwLock::new(Some(Arc::new(db)))),
            healthy: Arc::new(AtomicBool::new(true)),
            path,
        };
        store.migrate()?;
        store.ensure_instance_id()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Compacts the data file of `dir` in place: the big tables are rewritten in key order
    /// (full leaves; see `repack`), then the pages freed by copy-on-write commits are given
    /// back to the file system. The file's size before and after. Needs the data dir to
    /// itself, so it fails with `Locked` while a server holds it.
    pub fn compact(dir: &Path) -> StoreResult<(u64, u64)> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::Db(format!("{} holds no data file", dir.display())));
        }
        let before = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let store = Store::open(dir)?;
        let taken = store.db.write().unwrap_or_else(|e| e.into_inner()).take();
        let mut db = taken
            .and_then(Arc::into_inner)
            .ok_or_else(|| StoreError::Db("the data file is still in use".into()))?;
        repack(&db, ASSIGNMENTS, tables::ASSIGNMENTS_REPACK)?;
        repack(&db, CONVERSIONS, tables::CONVERSIONS_REPACK)?;
        while db.compact()? {}
        drop(db);
        let after = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok((before, after))
    }

    /// The open database; `Unavailable` while `reopen` is swapping it.
    pub(crate) fn db(&self) -> StoreResult<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the data file is being reopened".into()))
    }

    /// Whether the store can write (no I/O failure since the last successful reopen).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Notes an I/O failure seen by anyone using the store; the writer thread recovers.
    pub(crate) fn note(&self, e: &StoreError) {
        if matches!(e, StoreError::Unavailable(_)) && self.healthy.swap(false, Ordering::AcqRel) {
            tracing::error!(error = %e, "the store cannot write; refusing writes until it can");
        }
    }

    pub(crate) fn mark_healthy(&self) {
        self.healthy.store(true, Ordering::Release);
    }

    /// Closes the file and opens it again (redb refuses every operation after an I/O error
    /// until then). Waits up to `wait` for other users of the old handle to let go; on
    /// failure the store stays unavailable and the caller tries again later.
    pub(crate) fn reopen(&self, wait: Duration) -> StoreResult<()> {
        let deadline = Instant::now() + wait;
        let taken = self.db.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut old) = taken {
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if Instant::now() < deadline => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(still) => {
                        *self.db.write().unwrap_or_else(|e| e.into_inner()) = Some(still);
                        return Err(StoreError::Unavailable(
                            "the data file is still in use".into(),
                        ));
                    }
                }
            }
        }
        // A transaction that outlived its handle holds the file lock until it ends.
        let db = loop {
            match open_db(&self.path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(StoreError::Unavailable(e.to_string())),
            }
        };
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(db));
        Ok(())
    }

    pub fn schema_version(&self) -> StoreResult<u32> {
        let r = self.db()?.begin_read()?;
        let t = match r.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        Ok(t.get(SCHEMA_KEY)?.map(|v| read_u32(v.value())).unwrap_or(0))
    }

    /// Runs every migration step between the file's schema and this build's, in one
    /// transaction, so a crash mid-way leaves the old schema intact.
    fn migrate(&self) -> StoreResult<()> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { found, known: SCHEMA_VERSION });
        }
        if found == SCHEMA_VERSION {
            return self.ensure_tables();
        }
        let w = self.db()?.begin_write()?;
        {
            tables::create_all(&w)?;
            if found == 1 {
                migrate_v1_to_v2(&w)?;
            }
            // 2 -> 3 added the audit tables and 3 -> 4 the webhook tables, which create_all
            // has just made.
            if (1..5).contains(&found) {
                migrate_v4_to_v5(&w)?;
            }
            if (1..6).contains(&found) {
                migrate_v5_to_v6(&w)?;
            }
            let mut meta = w.open_table(META)?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_le_bytes().as_slice())?;
        }
        w.commit()?;
        if found != 0 {
            tracing::info!(from = found, to = SCHEMA_VERSION, "migrated the data file");
        }
        Ok(())
    }

    /// Tables added without a schema change (they only add data) are created at open, so a
    /// file written by an older build of this schema never meets a missing table.
    fn ensure_tables(&self) -> StoreResult<()> {
        {
            let r = self.db()?.begin_read()?;
            match r.open_table(CAMPAIGN_WAVES) {
                Ok(_) => return Ok(()),
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let w = self.db()?.begin_write()?;
        tables::create_all(&w)?;
        w.commit()?;
        Ok(())
    }

    fn ensure_instance_id(&self) -> StoreResult<()> {
        if self.meta_bytes(INSTANCE_KEY)?.is_some() {
            return Ok(());
        }
        let w = self.db()?.begin_write()?;
        {
            let mut meta = w.open_table(META)?;
            if meta.get(INSTANCE_KEY)?.is_none() {
                meta.insert(INSTANCE_KEY, Uuid::new_v4().as_bytes().as_slice())?;
            }
        }
        w.commit()?;
        Ok(())
    }

    fn meta_bytes(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(META)?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Gives the data set a new name. A restored copy goes on from an older commit than the
    /// original (or another restore of the same backup) reached, so its commit numbers repeat
    /// theirs: an export target must see it as another data set, never resume its cursor.
    pub(in crate::store) fn renew_instance_id(&self) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        w.open_table(META)?.insert(INSTANCE_KEY, Uuid::new_v4().as_bytes().as_slice())?;
        w.commit()?;
        Ok(())
    }

    /// The UUID naming this data set (new for a fresh data dir, a backup, a restore).
    pub(in crate::store) fn instance_id(&self) -> StoreResult<Uuid> {
        let b = self.meta_bytes(INSTANCE_KEY)?.unwrap_or_default();
        Uuid::from_slice(&b).map_err(|e| corrupt("meta", e))
    }

    /// The newest group commit of hot records: everything with `seq <= commit_seq()` is
    /// durable and will never change.
    pub(in crate::store) fn commit_seq(&self) -> StoreResult<u64> {
        Ok(self.meta_bytes(COMMIT_SEQ_KEY)?.map(|b| read_u64(&b)).unwrap_or(0))
    }

    // --- users -------------------------------------------------------------------------

    pub(in crate::store) fn admin_exists(&self) -> StoreResult<bool> {
        Ok(self.users()?.iter().any(|u| u.role == records::Role::Admin))
    }

    pub(in crate::store) fn user_count(&self) -> StoreResult<u64> {
        let r = self.db()?.begin_read()?;
        Ok(r.open_table(USERS)?.len()?)
    }

    /// Inserts a user; when `first_becomes_admin` and the store has no user yet, the role
    /// is set to admin in the same transaction, so two racing registrations cannot both win.
    /// Returns None when `only_if_empty` and a user already exists.
    /// Inserts a user. While no admin exists the first one that `may_be_admin` becomes it,
    /// decided in this transaction so two racing registrations cannot both win; with
    /// `only_if_no_admin` (public registration while it is closed) nobody else gets in.
    pub(in crate::store) fn insert_user(
        &self,
        mut user: User,
        only_if_no_admin: bool,
        may_be_admin: bool,
        actor: &str,
    ) -> StoreResult<Option<User>> {
        let w = self.db()?.begin_write()?;
        {
            let mut users = w.open_table(USERS)?;
            let mut admin_exists = false;
            for row in users.iter()? {
                let (_, v) = row?;
                admin_exists |= from_json::<User>("users", v.value())?.role == records::Role::Admin;
            }
            if admin_exists && only_if_no_admin {
                return Ok(None);
            }
            if !admin_exists && may_be_admin {
                user.role = records::Role::Admin;
            }
            let mut emails = w.open_table(USER_EMAILS)?;
            if emails.get(user.email.as_str())?.is_some() {
                return Err(StoreError::EmailTaken { email: user.email });
            }
            emails.insert(user.email.as_str(), user.id.as_u128())?;
            users.insert(user.id.as_u128(), to_json(&user).as_slice())?;
            w.open_table(SITE_KEYS)?.insert(user.site_key.as_str(), user.id.as_u128())?;
        }
        let d = audit::Draft::new(user.id, actor, "user.created")
            .data(serde_json::json!({"email": user.email, "role": user.role.as_str()}));
        audit::append(&w, &d, user.created_at)?;
        w.commit()?;
        Ok(Some(user))
    }

    pub(in crate::store) fn update_user(
        &self,
        user: &User,
        change: &audit::Draft,
    ) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        w.open_table(USERS)?.insert(user.id.as_u128(), to_json(user).as_slice())?;
        audit::append(&w, change, crate::store::writer::now_ms())?;
        w.commit()?;
        Ok(())
    }

    /// Saves a changed user unless that leaves no enabled admin (`StoreError::LastAdmin`);
    /// checked in the transaction, so two admins disabling each other cannot both win.
    pub(in crate::store) fn update_user_keeping_an_admin(
        &self,
        user: &User,
        change: &audit::Draft,
    ) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        {
            let mut users = w.open_table(USERS)?;
            users.insert(user.id.as_u128(), to_json(user).as_slice())?;
            if !enabled_admin_left(&users)? {
                return Err(StoreError::LastAdmin);
            }
        }
        audit::append(&w, change, crate::store::writer::now_ms())?;
        w.commit()?;
        Ok(())
    }

    /// Deletes a user with their email, site key and API keys (audited); None when there is
    /// no such user, `StoreError::LastAdmin` when they are the last enabled admin. Their
    /// experiments, records and audit entries stay: they become unreachable (every route is
    /// scoped to the owner, and the site key the tracker knows them by is gone), and keeping
    /// them costs nothing but disk, which `samplit` never reclaims silently.
    pub(in crate::store) fn remove_user(
        &self,
        id: Uuid,
        change: &audit::Draft,
    ) -> StoreResult<Option<User>> {
        let w = self.db()?.begin_write()?;
        let user = {
            let mut users = w.open_table(USERS)?;
            let Some(user) = users
                .remove(id.as_u128())?
                .map(|v| from_json::<User>("users", v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            if !enabled_admin_left(&users)? {
                return Err(StoreError::LastAdmin);
            }
            w.open_table(USER_EMAILS)?.remove(user.email.as_str())?;
            w.open_table(SITE_KEYS)?.remove(user.site_key.as_str())?;
            let mut keys = w.open_table(API_KEYS)?;
            let mut theirs = Vec::new();
            for row in keys.iter()? {
                let (k, v) = row?;
                if from_json::<ApiKey>("api_keys", v.value())?.user_id == id {
                    theirs.push(k.value());
                }
            }
            for k in &theirs {
                keys.remove(*k)?;
            }
            let mut hashes = w.open_table(API_KEY_HASHES)?;
            let mut stale = Vec::new();
            for row in hashes.iter()? {
                let (h, v) = row?;
                if theirs.contains(&v.value()) {
                    stale.push(h.value().to_vec());
                }
            }
            for h in stale {
                hashes.remove(h.as_slice())?;
            }
            user
        };
        audit::append(&w, change, crate::store::writer::now_ms())?;
        w.commit()?;
        Ok(Some(user))
    }

    pub(in crate::store) fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(USERS)?;
        t.get(id.as_u128())?.map(|v| from_json("users", v.value())).transpose()
    }

    pub(in crate::store) fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let id = {
            let r = self.db()?.begin_read()?;
            let t = r.open_table(USER_EMAILS)?;
            t.get(email)?.map(|v| v.value())
        };
        match id {
            Some(id) => self.user(Uuid::from_u128(id)),
            None => Ok(None),
        }
    }

    pub(in crate::store) fn users(&self) -> StoreResult<Vec<User>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(USERS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(from_json("users", v.value())?);
        }
        out.sort_by_key(|u: &User| u.created_at);
        Ok(out)
    }

    /// Every site key with its owner, for the in-memory lookup the tracker uses.
    pub(in crate::store) fn site_keys(&self) -> StoreResult<Vec<(String, Uuid)>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(SITE_KEYS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), Uuid::from_u128(v.value())));
        }
        Ok(out)
    }

    // --- API keys ----------------------------------------------------------------------

    pub(in crate::store) fn insert_api_key(
        &self,
        key: &ApiKey,
        hash: &[u8],
        actor: &str,
    ) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        {
            w.open_table(API_KEYS)?.insert(key.id.as_u128(), to_json(key).as_slice())?;
            w.open_table(API_KEY_HASHES)?.insert(hash, key.id.as_u128())?;
        }
        let d = audit::Draft::new(key.user_id, actor, "api_key.created")
            .data(serde_json::json!({"id": key.id, "name": key.name, "prefix": key.prefix}));
        audit::append(&w, &d, key.created_at)?;
        w.commit()?;
        Ok(())
    }

    pub(in crate::store) fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKey>> {
        let r = self.db()?.begin_read()?;
        let Some(id) = r.open_table(API_KEY_HASHES)?.get(hash)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let t = r.open_table(API_KEYS)?;
        t.get(id)?.map(|v| from_json("api_keys", v.value())).transpose()
    }

    pub(in crate::store) fn api_keys(&self, user: Uuid) -> StoreResult<Vec<ApiKey>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(API_KEYS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            let k: ApiKey = from_json("api_keys", v.value())?;
            if k.user_id == user {
                out.push(k);
            }
        }
        out.sort_by_key(|k| k.created_at);
        Ok(out)
    }

    pub(in crate::store) fn touch_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        w.open_table(API_KEYS)?.insert(key.id.as_u128(), to_json(key).as_slice())?;
        w.commit()?;
        Ok(())
    }

    /// Removes the key if `user` owns it (any user's with None, for admins); false when
    /// there is no such key of theirs. The audit entry goes to the key's owner.
    pub(in crate::store) fn delete_api_key(
        &self,
        user: Option<Uuid>,
        id: Uuid,
        actor: &str,
    ) -> StoreResult<bool> {
        let w = self.db()?.begin_write()?;
        let user = {
            let mut keys = w.open_table(API_KEYS)?;
            let owner = match keys.get(id.as_u128())? {
                Some(v) => Some(from_json::<ApiKey>("api_keys", v.value())?.user_id),
                None => None,
            };
            let Some(owner) = owner.filter(|o| user.is_none_or(|u| u == *o)) else {
                return Ok(false);
            };
            keys.remove(id.as_u128())?;
            let mut hashes = w.open_table(API_KEY_HASHES)?;
            let mut stale = Vec::new();
            for row in hashes.iter()? {
                let (h, v) = row?;
                if v.value() == id.as_u128() {
                    stale.push(h.value().to_vec());
                }
            }
            for h in stale {
                hashes.remove(h.as_slice())?;
            }
            owner
        };
        let d =
            audit::Draft::new(user, actor, "api_key.revoked").data(serde_json::json!({"id": id}));
        audit::append(&w, &d, crate::store::writer::now_ms())?;
        w.commit()?;
        Ok(true)
    }

    // --- experiments -------------------------------------------------------------------

    /// Stores an experiment, the audit entry of the change and the webhook deliveries that
    /// report it, in one transaction: a crash keeps all three or none.
    pub(in crate::store) fn put_experiment(
        &self,
        exp: &Experiment,
        change: &audit::Draft,
        events: &[webhooks::Delivery],
    ) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        w.open_table(EXPERIMENTS)?.insert(exp.id.as_u128(), to_json(exp).as_slice())?;
        audit::append(&w, change, exp.updated_at)?;
        webhooks::enqueue_in(&w, events)?;
        w.commit()?;
        Ok(())
    }

    pub(in crate::store) fn delete_experiment(
        &self,
        id: Uuid,
        change: &audit::Draft,
    ) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        {
            w.open_table(EXPERIMENTS)?.remove(id.as_u128())?;
            w.open_table(BANDIT)?.remove(id.as_u128())?;
        }
        audit::append(&w, change, crate::store::writer::now_ms())?;
        w.commit()?;
        Ok(())
    }

    pub(in crate::store) fn experiments(&self) -> StoreResult<Vec<Experiment>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(EXPERIMENTS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(from_json("experiments", v.value())?);
        }
        Ok(out)
    }

    // --- hot records (read side; writes go through the writer) ---------------------------

    pub(in crate::store) fn assignment(
        &self,
        exp: Uuid,
        user: &str,
    ) -> StoreResult<Option<AssignmentRec>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(ASSIGNMENTS)?;
        t.get((exp.as_u128(), user))?
            .map(|v| {
                records::decode_assignment(exp.as_u128(), user, v.value())
                    .map_err(|e| corrupt("assignments", e))
            })
            .transpose()
    }

    /// Visits every assignment of an experiment in key order, with its primary-goal
    /// conversion if any, without holding them all in memory.
    pub(in crate::store) fn scan_assignments(
        &self,
        exp: Uuid,
        mut f: impl FnMut(&str, &AssignmentRec, Option<&ConversionRec>) -> bool,
    ) -> StoreResult<()> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(ASSIGNMENTS)?;
        let conv = r.open_table(CONVERSIONS)?;
        let id = exp.as_u128();
        for row in t.range((id, "")..(id + 1, ""))? {
            let (k, v) = row?;
            let (_, user) = k.value();
            let rec = records::decode_assignment(id, user, v.value())
                .map_err(|e| corrupt("assignments", e))?;
            let c = conv
                .get((id, user, PRIMARY_GOAL))?
                .map(|v| postcard::from_bytes::<ConversionRec>(v.value()))
                .transpose()
                .map_err(|e| corrupt("conversions", e))?;
            if !f(user, &rec, c.as_ref()) {
                break;
            }
        }
        Ok(())
    }

    /// Hourly per-arm counters of an experiment: `(hour, arm, allocations, conversions)`.
    pub(in crate::store) fn timeseries(&self, exp: Uuid) -> StoreResult<Vec<(i64, u32, u64, u64)>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(TIMESERIES)?;
        let id = exp.as_u128();
        let mut out = Vec::new();
        for row in t.range((id, i64::MIN, 0)..=(id, i64::MAX, u32::MAX))? {
            let (k, v) = row?;
            let (_, hour, arm) = k.value();
            let (a, c) = v.value();
            out.push((hour, arm, a, c));
        }
        Ok(out)
    }

    /// The hourly counters of an experiment from `from_hour` on, as in `timeseries`: one
    /// range read, however long the experiment has run.
    pub(in crate::store) fn timeseries_since(
        &self,
        exp: Uuid,
        from_hour: i64,
    ) -> StoreResult<Vec<(i64, u32, u64, u64)>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(TIMESERIES)?;
        let id = exp.as_u128();
        let mut out = Vec::new();
        for row in t.range((id, from_hour, 0)..=(id, i64::MAX, u32::MAX))? {
            let (k, v) = row?;
            let (_, hour, arm) = k.value();
            let (a, c) = v.value();
            out.push((hour, arm, a, c));
        }
        Ok(out)
    }
}

/// The conversion key of an experiment's primary goal (the rule lives in engine::counting).
pub use crate::engine::counting::PRIMARY_GOAL;

/// Whether some user is an admin and not disabled.
fn enabled_admin_left(users: &impl ReadableTable<u128, &'static [u8]>) -> StoreResult<bool> {
    for row in users.iter()? {
        let (_, v) = row?;
        let u: User = from_json("users", v.value())?;
        if u.role == records::Role::Admin && !u.disabled {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) fn read_u64(b: &[u8]) -> u64 {
    b.get(..8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0)
}

fn read_u32(b: &[u8]) -> u32 {
    b.get(..4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes).unwrap_or(0)
}

/// Schema 6 leaves out the assignment id that the key determines; records made before keep
/// the random id they were given, so ids already handed out (and exported) stay the same.
fn migrate_v5_to_v6(w: &redb::WriteTransaction) -> StoreResult<()> {
    let n = rewrite_assignments(w, |exp, user, v| {
        let o: records::AssignmentRecV5 =
            postcard::from_bytes(v).map_err(|e| corrupt("assignments", e))?;
        let rec = AssignmentRec {
            id: o.id,
            arm: o.arm,
            weights_version: o.weights_version,
            propensity: o.propensity,
            at: o.at,
            seq: o.seq,
        };
        Ok(records::encode_assignment(exp, user, &rec))
    })?;
    if n > 0 {
        tracing::info!(records = n, "rewrote assignments in the schema 6 format");
    }
    Ok(())
}

/// Replaces every assignment's value with `f(experiment, user, old value)`, in chunks so
/// memory stays flat on big files (all in the caller's transaction). The rows rewritten.
fn rewrite_assignments(
    w: &redb::WriteTransaction,
    f: impl Fn(u128, &str, &[u8]) -> StoreResult<Vec<u8>>,
) -> StoreResult<u64> {
    use std::ops::Bound;
    const CHUNK: usize = 20_000;
    let mut n = 0u64;
    let mut asg = w.open_table(ASSIGNMENTS)?;
    let mut after: Option<(u128, String)> = None;
    loop {
        let mut rows: Vec<((u128, String), Vec<u8>)> = Vec::with_capacity(CHUNK);
        let lower = match &after {
            Some((e, u)) => Bound::Excluded((*e, u.as_str())),
            None => Bound::Unbounded,
        };
        for row in asg.range::<(u128, &str)>((lower, Bound::Unbounded))?.take(CHUNK) {
            let (k, v) = row?;
            let (exp, user) = k.value();
            rows.push(((exp, user.to_string()), f(exp, user, v.value())?));
        }
        let Some((last, _)) = rows.last() else { break };
        after = Some(last.clone());
        n += rows.len() as u64;
        for ((exp, user), bytes) in &rows {
            asg.insert((*exp, user.as_str()), bytes.as_slice())?;
        }
    }
    Ok(n)
}

/// Rewrites one table in key order into a fresh one that takes its name, in one
/// transaction (a crash leaves the old table whole). Visitors arrive in random key order,
/// so the B-tree's leaves sit about two-thirds full; redb packs an ascending load into full
/// leaves, and an experiment that no longer takes visitors keeps its range packed.
fn repack<K: redb::Key + 'static, V: redb::Value + 'static>(
    db: &Database,
    table: TableDefinition<K, V>,
    scratch: TableDefinition<K, V>,
) -> StoreResult<()> {
    let w = db.begin_write()?;
    {
        let src = w.open_table(table)?;
        let mut dst = w.open_table(scratch)?;
        for row in src.iter()? {
            let (k, v) = row?;
            dst.insert(k.value(), v.value())?;
        }
    }
    w.delete_table(table)?;
    w.rename_table(scratch, table)?;
    w.commit()?;
    Ok(())
}

/// Schema 1 kept site keys only inside user records; schema 2 indexes them so the tracker
/// finds a site's owner without a scan.
fn migrate_v1_to_v2(w: &redb::WriteTransaction) -> StoreResult<()> {
    let users = w.open_table(USERS)?;
    let mut sites = w.open_table(SITE_KEYS)?;
    for row in users.iter()? {
        let (_, v) = row?;
        let u: User = from_json("users", v.value())?;
        sites.insert(u.site_key.as_str(), u.id.as_u128())?;
    }
    Ok(())
}

/// Schema 5 stamps every assignment and conversion with the group commit that wrote it.
/// Older records all count as commit 1, the first an export sends. One transaction (a crash
/// leaves schema 4 whole), rewritten in chunks so memory stays flat on big files.
fn migrate_v4_to_v5(w: &redb::WriteTransaction) -> StoreResult<()> {
    use records::{AssignmentRecV4, AssignmentRecV5, ConversionRecV4};
    use std::ops::Bound;
    const CHUNK: usize = 20_000;
    let mut n = rewrite_assignments(w, |_, _, v| {
        let o: AssignmentRecV4 = postcard::from_bytes(v).map_err(|e| corrupt("assignments", e))?;
        let rec = AssignmentRecV5 {
            id: o.id,
            arm: o.arm,
            weights_version: o.weights_version,
            propensity: o.propensity,
            at: o.at,
            seq: 1,
        };
        Ok(postcard::to_allocvec(&rec).expect("serializes"))
    })?;
    let mut conv = w.open_table(CONVERSIONS)?;
    let mut after: Option<(u128, String, String)> = None;
    loop {
        let mut rows: Vec<((u128, String, String), Vec<u8>)> = Vec::with_capacity(CHUNK);
        let lower = match &after {
            Some((e, u, g)) => Bound::Excluded((*e, u.as_str(), g.as_str())),
            None => Bound::Unbounded,
        };
        for row in conv.range::<(u128, &str, &str)>((lower, Bound::Unbounded))?.take(CHUNK) {
            let (k, v) = row?;
            let (exp, user, goal) = k.value();
            let o: ConversionRecV4 =
                postcard::from_bytes(v.value()).map_err(|e| corrupt("conversions", e))?;
            let rec = ConversionRec { arm: o.arm, value: o.value, at: o.at, seq: 1 };
            rows.push((
                (exp, user.to_string(), goal.to_string()),
                postcard::to_allocvec(&rec).expect("serializes"),
            ));
        }
        let Some((last, _)) = rows.last() else { break };
        after = Some(last.clone());
        n += rows.len() as u64;
        for ((exp, user, goal), bytes) in &rows {
            conv.insert((*exp, user.as_str(), goal.as_str()), bytes.as_slice())?;
        }
    }
    w.open_table(META)?.insert(COMMIT_SEQ_KEY, 1u64.to_le_bytes().as_slice())?;
    if n > 0 {
        tracing::info!(records = n, "stamped records with their commit (schema 5)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: &str) -> User {
        User {
            id: Uuid::new_v4(),
            email: email.into(),
            name: String::new(),
            role: records::Role::Member,
            password_hash: "x".into(),
            site_key: format!("site_{email}"),
            created_at: 0,
            disabled: false,
            token_version: 0,
            notifications: Default::default(),
        }
    }

    #[test]
    fn a_v1_file_opens_after_the_version_bump() {
        let dir = tempfile::tempdir().unwrap();
        let u = user("old@example.com");
        {
            // Write a file the way schema 1 did: users and emails, no site-key index.
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let w = db.begin_write().unwrap();
            {
                w.open_table(USERS)
                    .unwrap()
                    .insert(u.id.as_u128(), to_json(&u).as_slice())
                    .unwrap();
                w.open_table(USER_EMAILS)
                    .unwrap()
                    .insert(u.email.as_str(), u.id.as_u128())
                    .unwrap();
                w.open_table(META)
                    .unwrap()
                    .insert(SCHEMA_KEY, 1u32.to_le_bytes().as_slice())
                    .unwrap();
            }
            w.commit().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.site_keys().unwrap(), vec![(u.site_key.clone(), u.id)]);
        assert_eq!(s.user_by_email("old@example.com").unwrap().unwrap().id, u.id);
    }

    #[test]
    fn v4_records_gain_a_commit_seq_and_the_data_set_an_id() {
        #[derive(serde::Serialize)]
        struct OldAssignment {
            id: u128,
            arm: u16,
            weights_version: u32,
            propensity: f64,
            at: i64,
        }
        #[derive(serde::Serialize)]
        struct OldConversion {
            arm: u16,
            value: Option<f64>,
            at: i64,
        }
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let w = db.begin_write().unwrap();
            {
                let a = OldAssignment { id: 7, arm: 1, weights_version: 2, propensity: 0.5, at: 9 };
                let c = OldConversion { arm: 1, value: Some(3.5), at: 10 };
                w.open_table(ASSIGNMENTS)
                    .unwrap()
                    .insert((5u128, "u"), postcard::to_allocvec(&a).unwrap().as_slice())
                    .unwrap();
                w.open_table(CONVERSIONS)
                    .unwrap()
                    .insert((5u128, "u", ""), postcard::to_allocvec(&c).unwrap().as_slice())
                    .unwrap();
                w.open_table(META)
                    .unwrap()
                    .insert(SCHEMA_KEY, 4u32.to_le_bytes().as_slice())
                    .unwrap();
            }
            w.commit().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let a = s.assignment(Uuid::from_u128(5), "u").unwrap().unwrap();
        assert_eq!(
            (a.id, a.arm, a.weights_version, a.propensity, a.at, a.seq),
            (7, 1, 2, 0.5, 9, 1)
        );
        assert_eq!(s.commit_seq().unwrap(), 1);
        let first_export = scan::SeqRange { after: 0, upto: s.commit_seq().unwrap() };
        let page = s.conversions_page(None, first_export, 10, 10).unwrap();
        assert_eq!(page.rows.len(), 1, "a first export sends the migrated records");
        assert_eq!(page.rows[0].1.value, Some(3.5));
        let later = scan::SeqRange { after: 1, upto: 5 };
        assert!(s.assignments_page(None, later, 10, 10).unwrap().rows.is_empty());
        let id = s.instance_id().unwrap();
        drop(s);
        assert_eq!(Store::open(dir.path()).unwrap().instance_id().unwrap(), id, "the id is kept");
    }

    #[test]
    fn a_newer_file_is_refused_and_a_second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Locked(_))));
        {
            let w = s.db().unwrap().begin_write().unwrap();
            w.open_table(META).unwrap().insert(SCHEMA_KEY, 99u32.to_le_bytes().as_slice()).unwrap();
            w.commit().unwrap();
        }
        drop(s);
        assert!(matches!(Store::open(dir.path()), Err(StoreError::TooNew { found: 99, .. })));
    }

    #[test]
    fn first_user_is_admin_and_emails_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let a = s.insert_user(user("a@x.io"), true, true, "test").unwrap().unwrap();
        assert_eq!(a.role, records::Role::Admin);
        assert!(s.insert_user(user("b@x.io"), true, true, "test").unwrap().is_none());
        let b = s.insert_user(user("b@x.io"), false, true, "test").unwrap().unwrap();
        assert_eq!(b.role, records::Role::Member);
        assert!(matches!(
            s.insert_user(user("b@x.io"), false, true, "test"),
            Err(StoreError::EmailTaken { .. })
        ));
    }
}
