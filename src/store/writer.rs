//! The one writer of hot records. Assignments and conversions queue here; each loop takes
//! everything queued (up to `max_batch`), applies it in ONE redb transaction together with
//! the per-arm counters and the sealed bandit state, commits durably, and only then answers
//! every request in the batch. While one batch is being fsynced the next one queues, so
//! batches grow with load and durability costs one fsync per batch, not per request.
//!
//! The writer also owns the bandit state: it is the only code that changes counters or
//! weights, and it publishes an immutable snapshot per experiment for the hot path to read.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::records::{
    AssignmentRec, BanditState, ConversionRec, EXCLUDED, assignment_id, decode_assignment,
    encode_assignment,
};
use super::tables::*;
use super::webhooks::Webhook;
use super::{Store, StoreError, StoreResult, corrupt};
use crate::engine::allocator::{self, Weights};
use crate::engine::counting::{self, PRIMARY_GOAL, Seen};
use crate::engine::crypto::StateKey;

/// What the writer needs to know of an experiment to keep its state.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpMeta {
    /// Whose audit chain records this experiment's weight updates.
    pub owner: Uuid,
    pub arms: usize,
    pub adaptive: bool,
    /// How an adaptive experiment's weights follow its results.
    pub policy: allocator::Policy,
    pub floor: f64,
    pub burn_in: u64,
    /// The split for fixed experiments (and the start of adaptive ones).
    pub initial_weights: Vec<f64>,
}

/// An immutable view of one experiment's counters and current weights.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: BanditState,
    pub weights: Arc<Weights>,
}

/// The published snapshots, read by the hot path without touching the writer.
#[derive(Clone, Default)]
pub struct Live {
    inner: Arc<RwLock<HashMap<Uuid, Arc<Snapshot>>>>,
}

impl Live {
    // A panic while holding the lock cannot leave the map half-changed (it holds immutable
    // snapshots, each replaced whole), so a poisoned lock is recovered, never skipped.
    pub fn get(&self, exp: Uuid) -> Option<Arc<Snapshot>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).get(&exp).cloned()
    }

    fn publish(&self, exp: Uuid, snap: Snapshot) {
        let mut m = self.inner.write().unwrap_or_else(|e| e.into_inner());
        m.insert(exp, Arc::new(snap));
    }

    fn remove(&self, exp: Uuid) {
        let mut m = self.inner.write().unwrap_or_else(|e| e.into_inner());
        m.remove(&exp);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AssignOutcome {
    New(AssignmentRec),
    Existing(AssignmentRec),
}

impl AssignOutcome {
    pub fn record(&self) -> &AssignmentRec {
        match self {
            AssignOutcome::New(r) | AssignOutcome::Existing(r) => r,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertOutcome {
    Recorded,
    Duplicate,
    NotAssigned,
    Excluded,
}

type Reply<T> = oneshot::Sender<StoreResult<T>>;
type ExecFn = Box<dyn FnOnce(&mut Ctx<'_>) -> StoreResult<serde_json::Value> + Send>;

enum Op {
    /// An assignment or conversion: batched into the next group commit.
    Hot(Hot),
    Register {
        exp: Uuid,
        meta: ExpMeta,
        reply: Reply<()>,
    },
    Forget {
        exp: Uuid,
        reply: Reply<()>,
    },
    Exec {
        f: ExecFn,
        reply: Reply<serde_json::Value>,
    },
    Stop {
        reply: Reply<()>,
    },
    Refresh {
        exp: Uuid,
        reply: Reply<()>,
    },
}

/// The handle the service layer holds: cheap to clone, answers come back on oneshots.
#[derive(Clone)]
pub struct Writer {
    tx: Sender<Op>,
    live: Live,
    /// Hot ops sent and not yet taken by the writer thread.
    queued: Arc<AtomicUsize>,
    max_queue: usize,
}

pub struct WriterOptions {
    pub max_batch: usize,
    pub max_queue: usize,
    pub refresh_interval: Duration,
    /// Least weight move that publishes a new weights version (`allocator::material_change`).
    pub min_weight_change: f64,
}

/// What an `exec` closure may touch: the store, the writer's states and key.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub key: &'a mut StateKey,
    states: &'a mut HashMap<Uuid, BanditState>,
    metas: &'a HashMap<Uuid, ExpMeta>,
    broken: &'a mut HashSet<Uuid>,
    live: &'a Live,
}

impl Ctx<'_> {
    /// Rebuilds an experiment's counters from its assignment and conversion records and the
    /// stored weight history, writes the state sealed, and publishes it.
    pub fn rebuild(&mut self, exp: Uuid, arms: usize) -> StoreResult<BanditState> {
        let w = self.store.db()?.begin_write()?;
        let state = {
            let prev = self.states.get(&exp).cloned();
            let state = recount(&w, exp, arms, prev.as_ref())?;
            w.open_table(BANDIT)?.insert(exp.as_u128(), seal(self.key, exp, &state).as_slice())?;
            state
        };
        w.commit()?;
        self.broken.remove(&exp);
        self.states.insert(exp, state.clone());
        if self.metas.contains_key(&exp) {
            self.live.publish(exp, snapshot(&state));
        }
        Ok(state)
    }

    /// Stores a new webhook, its secret sealed with the state key, unless its owner has
    /// `max` already (false).
    pub fn insert_webhook(&mut self, hook: Webhook, max: usize) -> StoreResult<bool> {
        super::webhooks::insert_sealed(self.store, self.key, hook, max)
    }

    /// A webhook's signing secret, opened with the state key.
    pub fn webhook_secret(&self, hook: &Webhook) -> StoreResult<String> {
        hook.open_secret(self.key)
    }

    /// Seals webhook secrets still stored in plain text (written by an older version).
    pub fn seal_webhook_secrets(&mut self) -> StoreResult<usize> {
        super::webhooks::seal_plain_secrets(self.store, self.key)
    }

    /// Re-seals every state and webhook secret under `new` in one transaction, then
    /// switches to it.
    pub fn reseal_all(&mut self, new: StateKey) -> StoreResult<usize> {
        if let Some(exp) = self.broken.iter().next() {
            return Err(StoreError::StateUnreadable { experiment: *exp });
        }
        let w = self.store.db()?.begin_write()?;
        {
            let mut t = w.open_table(BANDIT)?;
            for (exp, st) in self.states.iter() {
                t.insert(exp.as_u128(), seal(&new, *exp, st).as_slice())?;
            }
        }
        // The webhook signing secrets are sealed with the same key: same transaction.
        super::webhooks::reseal_in(&w, self.key, &new)?;
        w.commit()?;
        *self.key = new;
        Ok(self.states.len())
    }

    pub fn broken(&self) -> Vec<Uuid> {
        self.broken.iter().copied().collect()
    }
}

fn seal(key: &StateKey, exp: Uuid, st: &BanditState) -> Vec<u8> {
    let plain = postcard::to_allocvec(st).expect("state serializes");
    key.seal(exp.as_bytes(), &plain)
}

fn snapshot(st: &BanditState) -> Snapshot {
    Snapshot {
        state: st.clone(),
        weights: Arc::new(Weights { version: st.weights_version, w: st.weights.clone() }),
    }
}

/// Opens every sealed state. Ones that do not open are returned apart: a loud error for
/// that experiment, never a silent reset.
pub fn load_states(
    store: &Store,
    key: &StateKey,
) -> StoreResult<(HashMap<Uuid, BanditState>, HashSet<Uuid>)> {
    let r = store.db()?.begin_read()?;
    let t = r.open_table(BANDIT)?;
    let mut ok = HashMap::new();
    let mut broken = HashSet::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let exp = Uuid::from_u128(k.value());
        let st = key
            .open(exp.as_bytes(), v.value())
            .ok()
            .and_then(|plain| postcard::from_bytes::<BanditState>(&plain).ok());
        match st {
            Some(st) => {
                ok.insert(exp, st);
            }
            None => {
                broken.insert(exp);
            }
        }
    }
    Ok((ok, broken))
}

/// Counts an experiment's records from scratch, in the given transaction's view.
fn recount(
    w: &WriteTransaction,
    exp: Uuid,
    arms: usize,
    prev: Option<&BanditState>,
) -> StoreResult<BanditState> {
    let id = exp.as_u128();
    let history = w.open_table(WEIGHT_HISTORY)?;
    let mut weights_at: HashMap<u32, Vec<f64>> = HashMap::new();
    for row in history.range((id, 0)..=(id, u32::MAX))? {
        let (k, v) = row?;
        let ws: Vec<f64> = postcard::from_bytes(v.value()).map_err(|e| corrupt("weights", e))?;
        weights_at.insert(k.value().1, ws);
    }
    let mut st = BanditState::new(arms, vec![1.0 / arms.max(1) as f64; arms]);
    if let Some((&v, ws)) = weights_at.iter().max_by_key(|(v, _)| **v) {
        st.weights = ws.clone();
        st.weights_version = v;
    }
    if let Some(p) = prev {
        if p.weights.len() == arms && p.weights_version >= st.weights_version {
            st.weights = p.weights.clone();
            st.weights_version = p.weights_version;
        }
        st.refreshed_at = p.refreshed_at;
    }
    let asg = w.open_table(ASSIGNMENTS)?;
    let conv = w.open_table(CONVERSIONS)?;
    for row in asg.range((id, "")..(id + 1, ""))? {
        let (k, v) = row?;
        let (_, user) = k.value();
        let rec = decode_assignment(id, user, v.value()).map_err(|e| corrupt("assignments", e))?;
        let arm = (!rec.excluded()).then_some(usize::from(rec.arm));
        let seen = match weights_at.get(&rec.weights_version) {
            Some(ws) => Seen::Weights(ws),
            None => Seen::Propensity(rec.propensity),
        };
        counting::count_assignment(&mut st, arm, seen)
            .map_err(|e| corrupt("assignments", format!("arm {} out of range for {exp}", e.0)))?;
        let Some(arm) = arm else { continue };
        // Only the primary goal counts: the one conversion key to look up.
        if let Some(c) = conv.get((id, user, PRIMARY_GOAL))? {
            let c: ConversionRec =
                postcard::from_bytes(c.value()).map_err(|e| corrupt("conversions", e))?;
            counting::count_conversion(&mut st, arm, rec.propensity, c.value);
        }
    }
    Ok(st)
}

/// Recounts an experiment in a read snapshot and compares with the stored counters.
/// Returns `(stored, recounted)`.
pub fn check(
    store: &Store,
    key: &StateKey,
    exp: Uuid,
    arms: usize,
) -> StoreResult<(Option<BanditState>, BanditState)> {
    // A write transaction gives one consistent view of records and state; it is aborted.
    let w = store.db()?.begin_write()?;
    let stored = match w.open_table(BANDIT)?.get(exp.as_u128())? {
        Some(v) => Some(
            key.open(exp.as_bytes(), v.value())
                .ok()
                .and_then(|p| postcard::from_bytes::<BanditState>(&p).ok())
                .ok_or(StoreError::StateUnreadable { experiment: exp })?,
        ),
        None => None,
    };
    let recounted = recount(&w, exp, arms, stored.as_ref())?;
    w.abort()?;
    Ok((stored, recounted))
}

impl Writer {
    /// Starts the writer thread over `store`, with the states that `load_states` opened.
    pub fn start(
        store: Store,
        key: StateKey,
        states: HashMap<Uuid, BanditState>,
        broken: HashSet<Uuid>,
        opts: WriterOptions,
    ) -> (Writer, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        let live = Live::default();
        let queued = Arc::new(AtomicUsize::new(0));
        let max_queue = opts.max_queue;
        let mut thread = Thread {
            queued: queued.clone(),
            store,
            key,
            rx,
            states,
            metas: HashMap::new(),
            broken,
            dirty: HashSet::new(),
            unpersisted: HashSet::new(),
            live: live.clone(),
            opts,
            stop: None,
            last_recovery: None,
        };
        let handle = std::thread::Builder::new()
            .name("samplit-writer".into())
            .spawn(move || thread.run())
            .expect("spawn the writer thread");
        (Writer { tx, live, queued, max_queue }, handle)
    }

    pub fn live(&self) -> &Live {
        &self.live
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// As `call`, for hot ops: refused at once when the backlog is full.
    async fn call_hot<T>(&self, make: impl FnOnce(Reply<T>) -> Hot) -> StoreResult<T> {
        let before = self.queued.fetch_add(1, Ordering::Relaxed);
        if before >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Busy(before));
        }
        self.call(|reply| Op::Hot(make(reply))).await
    }

    /// Records a new visitor's assignment (`arm` None: excluded), or returns the one
    /// already stored when another request got there first.
    pub async fn assign(
        &self,
        exp: Uuid,
        user: String,
        arm: Option<usize>,
        weights: Arc<Weights>,
        at: i64,
    ) -> StoreResult<AssignOutcome> {
        self.call_hot(|reply| Hot::Assign { exp, user, arm, weights, at, reply }).await
    }

    pub async fn convert(
        &self,
        exp: Uuid,
        user: String,
        goal: String,
        value: Option<f64>,
        at: i64,
    ) -> StoreResult<ConvertOutcome> {
        self.call_hot(|reply| Hot::Convert { exp, user, goal, value, at, reply }).await
    }

    /// Makes an experiment known to the writer (at start-up, or when it starts running).
    pub async fn register(&self, exp: Uuid, meta: ExpMeta) -> StoreResult<()> {
        self.call(|reply| Op::Register { exp, meta, reply }).await
    }

    pub async fn forget(&self, exp: Uuid) -> StoreResult<()> {
        self.call(|reply| Op::Forget { exp, reply }).await
    }

    /// Recomputes an adaptive experiment's weights now, whatever the refresh interval.
    pub async fn refresh_now(&self, exp: Uuid) -> StoreResult<()> {
        self.call(|reply| Op::Refresh { exp, reply }).await
    }

    /// Commits what is queued before this call, then ends the writer thread.
    pub async fn stop(&self) -> StoreResult<()> {
        self.call(|reply| Op::Stop { reply }).await
    }

    /// Runs `f` on the writer thread, between batches.
    pub async fn exec(
        &self,
        f: impl FnOnce(&mut Ctx<'_>) -> StoreResult<serde_json::Value> + Send + 'static,
    ) -> StoreResult<serde_json::Value> {
        self.call(|reply| Op::Exec { f: Box::new(f), reply }).await
    }
}

struct Thread {
    queued: Arc<AtomicUsize>,
    store: Store,
    key: StateKey,
    rx: Receiver<Op>,
    states: HashMap<Uuid, BanditState>,
    metas: HashMap<Uuid, ExpMeta>,
    broken: HashSet<Uuid>,
    /// Experiments with new results since their last weight refresh.
    dirty: HashSet<Uuid>,
    /// States changed outside a batch (a refresh) and not yet written.
    unpersisted: HashSet<Uuid>,
    live: Live,
    opts: WriterOptions,
    stop: Option<Reply<()>>,
    /// When the last reopen after an I/O failure was tried.
    last_recovery: Option<Instant>,
}

/// How often an unavailable store is reopened and tried again.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

enum Hot {
    Assign {
        exp: Uuid,
        user: String,
        arm: Option<usize>,
        weights: Arc<Weights>,
        at: i64,
        reply: Reply<AssignOutcome>,
    },
    Convert {
        exp: Uuid,
        user: String,
        goal: String,
        value: Option<f64>,
        at: i64,
        reply: Reply<ConvertOutcome>,
    },
}

enum Outcome {
    Assign(StoreResult<AssignOutcome>),
    Convert(StoreResult<ConvertOutcome>),
}

const HOUR_MS: i64 = 3_600_000;

impl Thread {
    fn run(&mut self) {
        let tick = self.opts.refresh_interval.max(Duration::from_millis(10));
        loop {
            self.recover_if_due();
            let wait = if self.store.healthy() { tick } else { tick.min(RECOVERY_INTERVAL / 4) };
            let first = match self.rx.recv_timeout(wait) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut hot = Vec::new();
            let idle = first.is_none();
            if let Some(op) = first {
                self.take(op, &mut hot);
                while hot.len() < self.opts.max_batch {
                    match self.rx.try_recv() {
                        Ok(op) => self.take(op, &mut hot),
                        Err(_) => break,
                    }
                }
            }
            if !hot.is_empty() {
                self.recover_if_due();
                self.commit(std::mem::take(&mut hot));
            }
            self.refresh_due();
            // Under traffic the next batch carries refreshed weights; when idle, write them now.
            // While the store cannot write they wait for its recovery (or the next batch).
            if idle && !self.unpersisted.is_empty() && self.store.healthy() {
                self.commit(Vec::new());
            }
            if self.stop.is_some() {
                break;
            }
        }
        // Shutdown: write whatever a refresh left unwritten.
        if !self.unpersisted.is_empty() {
            self.commit(Vec::new());
        }
        if let Some(reply) = self.stop.take() {
            let _ = reply.send(Ok(()));
        }
    }

    /// Queues a hot op, or runs a control op at once after flushing what is queued, so
    /// every op sees the effects of the ones sent before it.
    fn take(&mut self, op: Op, hot: &mut Vec<Hot>) {
        match op {
            Op::Hot(h) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                hot.push(h)
            }
            control => {
                if !hot.is_empty() {
                    self.commit(std::mem::take(hot));
                }
                self.control(control);
            }
        }
    }

    fn control(&mut self, op: Op) {
        match op {
            Op::Register { exp, meta, reply } => {
                let r = self.register(exp, meta);
                if let Err(e) = &r {
                    self.store.note(e);
                }
                let _ = reply.send(r);
            }
            Op::Forget { exp, reply } => {
                self.metas.remove(&exp);
                self.states.remove(&exp);
                self.dirty.remove(&exp);
                self.unpersisted.remove(&exp);
                self.live.remove(exp);
                let _ = reply.send(Ok(()));
            }
            Op::Exec { f, reply } => {
                let mut ctx = Ctx {
                    store: &self.store,
                    key: &mut self.key,
                    states: &mut self.states,
                    metas: &self.metas,
                    broken: &mut self.broken,
                    live: &self.live,
                };
                let r = f(&mut ctx);
                if let Err(e) = &r {
                    self.store.note(e);
                }
                let _ = reply.send(r);
            }
            Op::Stop { reply } => self.stop = Some(reply),
            Op::Refresh { exp, reply } => {
                if let Some(st) = self.states.get_mut(&exp) {
                    st.refreshed_at = 0;
                }
                self.dirty.insert(exp);
                self.refresh_due();
                let _ = reply.send(Ok(()));
            }
            Op::Hot(_) => unreachable!("hot ops are batched"),
        }
    }

    fn register(&mut self, exp: Uuid, meta: ExpMeta) -> StoreResult<()> {
        if self.broken.contains(&exp) {
            self.metas.insert(exp, meta);
            return Err(StoreError::StateUnreadable { experiment: exp });
        }
        if !self.states.contains_key(&exp) {
            let st = BanditState::new(meta.arms, meta.initial_weights.clone());
            let w = self.store.db()?.begin_write()?;
            {
                w.open_table(BANDIT)?
                    .insert(exp.as_u128(), seal(&self.key, exp, &st).as_slice())?;
                let ws = postcard::to_allocvec(&st.weights).expect("weights serialize");
                w.open_table(WEIGHT_HISTORY)?.insert((exp.as_u128(), 0), ws.as_slice())?;
            }
            w.commit()?;
            self.states.insert(exp, st);
        }
        if self
            .states
            .get(&exp)
            .is_some_and(|st| st.arms.len() != meta.arms && st.visitors() == 0 && st.excluded == 0)
        {
            // Left by a start that failed after registering, before the draft was edited.
            self.states.remove(&exp);
            return self.register(exp, meta);
        }
        let st = &self.states[&exp];
        if st.arms.len() != meta.arms {
            return Err(corrupt(
                "bandit_state",
                format!("{exp} has {} arms stored, {} defined", st.arms.len(), meta.arms),
            ));
        }
        self.live.publish(exp, snapshot(st));
        self.metas.insert(exp, meta);
        Ok(())
    }

    /// One transaction for the whole batch; answers only after it is durable.
    fn commit(&mut self, ops: Vec<Hot>) {
        let mut staged: HashMap<Uuid, BanditState> = HashMap::new();
        let result = self.apply(&ops, &mut staged);
        match result {
            Ok(outcomes) => {
                for (exp, st) in staged {
                    if self.metas.contains_key(&exp) {
                        self.live.publish(exp, snapshot(&st));
                    }
                    self.states.insert(exp, st);
                    self.dirty.insert(exp);
                }
                self.unpersisted.clear();
                for (op, out) in ops.into_iter().zip(outcomes) {
                    match (op, out) {
                        (Hot::Assign { reply, .. }, Outcome::Assign(r)) => {
                            let _ = reply.send(r);
                        }
                        (Hot::Convert { reply, .. }, Outcome::Convert(r)) => {
                            let _ = reply.send(r);
                        }
                        _ => unreachable!("outcomes follow ops"),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "batch commit failed; nothing in it was acknowledged");
                self.store.note(&e);
                for op in ops {
                    let err = match &e {
                        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                        other => StoreError::Db(other.to_string()),
                    };
                    match op {
                        Hot::Assign { reply, .. } => {
                            let _ = reply.send(Err(err));
                        }
                        Hot::Convert { reply, .. } => {
                            let _ = reply.send(Err(err));
                        }
                    }
                }
            }
        }
    }

    fn apply(
        &self,
        ops: &[Hot],
        staged: &mut HashMap<Uuid, BanditState>,
    ) -> StoreResult<Vec<Outcome>> {
        let w = self.store.db()?.begin_write()?;
        let mut outcomes = Vec::with_capacity(ops.len());
        {
            // Every record of this batch carries its number, so an export can ask for exactly
            // the records committed after the ones it already has.
            let seq = if ops.is_empty() {
                0
            } else {
                let mut meta = w.open_table(META)?;
                let seq =
                    meta.get(COMMIT_SEQ_KEY)?.map(|v| super::read_u64(v.value())).unwrap_or(0) + 1;
                meta.insert(COMMIT_SEQ_KEY, seq.to_le_bytes().as_slice())?;
                seq
            };
            let mut asg = w.open_table(ASSIGNMENTS)?;
            let mut conv = w.open_table(CONVERSIONS)?;
            let mut ts: HashMap<(u128, i64, u32), (u64, u64)> = HashMap::new();
            for op in ops {
                match op {
                    Hot::Assign { exp, user, arm, weights, at, .. } => {
                        if self.broken.contains(exp) {
                            outcomes.push(Outcome::Assign(Err(StoreError::StateUnreadable {
                                experiment: *exp,
                            })));
                            continue;
                        }
                        let key = (exp.as_u128(), user.as_str());
                        if let Some(v) = asg.get(key)? {
                            let rec = decode_assignment(key.0, key.1, v.value())
                                .map_err(|e| corrupt("assignments", e))?;
                            outcomes.push(Outcome::Assign(Ok(AssignOutcome::Existing(rec))));
                            continue;
                        }
                        let Some(st) = self.stage(staged, *exp) else {
                            outcomes.push(Outcome::Assign(Err(StoreError::NotRunning {
                                experiment: *exp,
                            })));
                            continue;
                        };
                        let rec = AssignmentRec {
                            id: assignment_id(key.0, key.1),
                            arm: arm.map(|a| a as u16).unwrap_or(EXCLUDED),
                            weights_version: weights.version,
                            propensity: arm.and_then(|a| weights.w.get(a).copied()).unwrap_or(0.0),
                            at: *at,
                            seq,
                        };
                        if let Err(e) =
                            counting::count_assignment(st, *arm, Seen::Weights(&weights.w))
                        {
                            outcomes.push(Outcome::Assign(Err(corrupt(
                                "assignments",
                                format!("arm {} out of range", e.0),
                            ))));
                            continue;
                        }
                        if let Some(a) = arm {
                            ts.entry((exp.as_u128(), at.div_euclid(HOUR_MS), *a as u32))
                                .or_default()
                                .0 += 1;
                        }
                        let bytes = encode_assignment(key.0, key.1, &rec);
                        asg.insert(key, bytes.as_slice())?;
                        outcomes.push(Outcome::Assign(Ok(AssignOutcome::New(rec))));
                    }
                    Hot::Convert { exp, user, goal, value, at, .. } => {
                        let key = (exp.as_u128(), user.as_str());
                        let Some(v) = asg.get(key)? else {
                            outcomes.push(Outcome::Convert(Ok(ConvertOutcome::NotAssigned)));
                            continue;
                        };
                        let rec = decode_assignment(key.0, key.1, v.value())
                            .map_err(|e| corrupt("assignments", e))?;
                        drop(v);
                        if rec.excluded() {
                            outcomes.push(Outcome::Convert(Ok(ConvertOutcome::Excluded)));
                            continue;
                        }
                        let ckey = (exp.as_u128(), user.as_str(), goal.as_str());
                        if conv.get(ckey)?.is_some() {
                            outcomes.push(Outcome::Convert(Ok(ConvertOutcome::Duplicate)));
                            continue;
                        }
                        if counting::counts_goal(goal) {
                            if self.broken.contains(exp) {
                                outcomes.push(Outcome::Convert(Err(StoreError::StateUnreadable {
                                    experiment: *exp,
                                })));
                                continue;
                            }
                            let Some(st) = self.stage(staged, *exp) else {
                                outcomes.push(Outcome::Convert(Err(StoreError::NotRunning {
                                    experiment: *exp,
                                })));
                                continue;
                            };
                            let arm = usize::from(rec.arm);
                            counting::count_conversion(st, arm, rec.propensity, *value);
                            ts.entry((
                                exp.as_u128(),
                                at.div_euclid(HOUR_MS),
                                u32::from(rec.arm),
                            ))
                            .or_default()
                            .1 += 1;
                        }
                        let c = ConversionRec { arm: rec.arm, value: *value, at: *at, seq };
                        let bytes = postcard::to_allocvec(&c).expect("record serializes");
                        conv.insert(ckey, bytes.as_slice())?;
                        outcomes.push(Outcome::Convert(Ok(ConvertOutcome::Recorded)));
                    }
                }
            }
            let mut series = w.open_table(TIMESERIES)?;
            for (k, (a, c)) in ts {
                let (a0, c0) = series.get(k)?.map(|v| v.value()).unwrap_or((0, 0));
                series.insert(k, (a0 + a, c0 + c))?;
            }
            let mut bandit = w.open_table(BANDIT)?;
            let mut history = w.open_table(WEIGHT_HISTORY)?;
            for (exp, st) in staged.iter() {
                bandit.insert(exp.as_u128(), seal(&self.key, *exp, st).as_slice())?;
            }
            for exp in &self.unpersisted {
                let Some(st) = staged.get(exp).or_else(|| self.states.get(exp)) else { continue };
                if !staged.contains_key(exp) {
                    bandit.insert(exp.as_u128(), seal(&self.key, *exp, st).as_slice())?;
                }
                let ws = postcard::to_allocvec(&st.weights).expect("weights serialize");
                history.insert((exp.as_u128(), st.weights_version), ws.as_slice())?;
                if let Some(meta) = self.metas.get(exp) {
                    let d = super::audit::Draft::new(meta.owner, "samplit", "weights.updated")
                        .experiment(*exp)
                        .data(serde_json::json!(counting::weights_update(st)));
                    // A damaged audit chain must not stop every visitor's assignment.
                    if let Err(e) = super::audit::append(&w, &d, st.refreshed_at) {
                        tracing::error!(error = %e, experiment = %exp, "cannot audit a weight update");
                    }
                }
            }
        }
        w.commit()?;
        Ok(outcomes)
    }

    /// While the store is unavailable, at most once per `RECOVERY_INTERVAL`: reopens the
    /// file, proves a write goes through, and takes the stored states back (a commit that
    /// failed may still have reached the file), then marks the store healthy again.
    fn recover_if_due(&mut self) {
        if self.store.healthy()
            || self.last_recovery.is_some_and(|t| t.elapsed() < RECOVERY_INTERVAL)
        {
            return;
        }
        self.last_recovery = Some(Instant::now());
        let tried = self
            .store
            .reopen(Duration::from_millis(500))
            .and_then(|()| probe_write(&self.store))
            .and_then(|()| load_states(&self.store, &self.key));
        let (stored, _) = match tried {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!(error = %e, "the store still cannot write; trying again shortly");
                return;
            }
        };
        for (exp, mut st) in stored {
            let Some(mem) = self.states.get(&exp) else { continue };
            // Weights refreshed since the last commit are this thread's own news.
            if mem.weights_version >= st.weights_version {
                st.weights = mem.weights.clone();
                st.weights_version = mem.weights_version;
            }
            st.refreshed_at = st.refreshed_at.max(mem.refreshed_at);
            if self.metas.contains_key(&exp) {
                self.live.publish(exp, snapshot(&st));
            }
            self.states.insert(exp, st);
        }
        self.store.mark_healthy();
        tracing::info!("the store can write again");
    }

    fn stage<'a>(
        &self,
        staged: &'a mut HashMap<Uuid, BanditState>,
        exp: Uuid,
    ) -> Option<&'a mut BanditState> {
        if let std::collections::hash_map::Entry::Vacant(e) = staged.entry(exp) {
            let st = self.states.get(&exp)?.clone();
            e.insert(st);
        }
        staged.get_mut(&exp)
    }

    /// Recomputes the weights of adaptive experiments that saw new results, at most once
    /// per refresh interval each. The new weights are published at once and written with
    /// the next batch (or on the next idle tick).
    fn refresh_due(&mut self) {
        let now = now_ms();
        let interval = self.opts.refresh_interval.as_millis() as i64;
        let due: Vec<Uuid> = self
            .dirty
            .iter()
            .filter(|e| self.states.get(e).is_some_and(|s| now - s.refreshed_at >= interval))
            .copied()
            .collect();
        for exp in due {
            self.dirty.remove(&exp);
            let Some(meta) = self.metas.get(&exp) else { continue };
            if !meta.adaptive {
                continue;
            }
            let Some(st) = self.states.get_mut(&exp) else { continue };
            let counts = counting::arm_counts(st);
            let w = allocator::policy_weights(meta.policy, &counts, meta.floor, meta.burn_in);
            st.refreshed_at = now;
            // Only a material change is a new version (history row, audit entry); the
            // counters are persisted with their batch either way.
            if allocator::material_change(&st.weights, &w, self.opts.min_weight_change) {
                st.weights = w;
                st.weights_version += 1;
                self.unpersisted.insert(exp);
            }
            self.live.publish(exp, snapshot(st));
        }
    }
}

/// A small durable write (then its removal), so a reopened store is only called healthy once
/// a commit goes through.
fn probe_write(store: &Store) -> StoreResult<()> {
    const PROBE_KEY: &str = "write_probe";
    let w = store.db()?.begin_write()?;
    w.open_table(META)?.insert(PROBE_KEY, vec![0u8; 64 * 1024].as_slice())?;
    w.commit()?;
    let w = store.db()?.begin_write()?;
    w.open_table(META)?.remove(PROBE_KEY)?;
    w.commit()?;
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads the stored weight history of an experiment: `(version, weights)`, oldest first.
pub fn weight_history(store: &Store, exp: Uuid) -> StoreResult<Vec<(u32, Vec<f64>)>> {
    let r = store.db()?.begin_read()?;
    let t = r.open_table(WEIGHT_HISTORY)?;
    let id = exp.as_u128();
    let mut out = Vec::new();
    for row in t.range((id, 0)..=(id, u32::MAX))? {
        let (k, v) = row?;
        let ws = postcard::from_bytes(v.value()).map_err(|e| corrupt("weights", e))?;
        out.push((k.value().1, ws));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full backlog refuses new records at once instead of queueing them without bound,
    /// and takes them again once the writer catches up.
    #[tokio::test]
    async fn a_full_backlog_refuses_hot_writes_until_it_drains() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let opts = WriterOptions {
            max_batch: 16,
            max_queue: 2,
            refresh_interval: Duration::from_millis(100),
            min_weight_change: 0.005,
        };
        let (writer, _h) =
            Writer::start(store, StateKey::new(&[5u8; 32]), HashMap::new(), HashSet::new(), opts);
        let exp = Uuid::new_v4();
        let meta = ExpMeta {
            owner: Uuid::nil(),
            arms: 2,
            adaptive: false,
            policy: allocator::Policy::Thompson,
            floor: 0.0,
            burn_in: 0,
            initial_weights: vec![0.5, 0.5],
        };
        writer.register(exp, meta).await.unwrap();
        let weights = writer.live().get(exp).unwrap().weights.clone();
        // Hold the writer thread so records pile up behind it.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let w = writer.clone();
        let hold = tokio::spawn(async move {
            w.exec(move |_| {
                let _ = held.recv();
                Ok(serde_json::Value::Null)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let assign = |user: &str| {
            let (w, ws, user) = (writer.clone(), weights.clone(), user.to_string());
            tokio::spawn(async move { w.assign(exp, user, Some(0), ws, 1).await })
        };
        let queued = [assign("a"), assign("b")];
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = writer.assign(exp, "c".into(), Some(0), weights.clone(), 1).await;
        assert!(matches!(refused, Err(StoreError::Busy(2))), "{refused:?}");
        release.send(()).unwrap();
        hold.await.unwrap().unwrap();
        for q in queued {
            assert!(matches!(q.await.unwrap(), Ok(AssignOutcome::New(_))));
        }
        let again = writer.assign(exp, "c".into(), Some(0), weights, 1).await;
        assert!(matches!(again, Ok(AssignOutcome::New(_))), "{again:?}");
    }
}
