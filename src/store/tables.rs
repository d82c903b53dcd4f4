//! Table definitions. Keys are chosen for the lookups the hot path makes:
//! `(experiment, user)` for sticky assignments, `(experiment, user, goal)` for conversions.

use redb::{TableDefinition, WriteTransaction};

pub const SCHEMA_KEY: &str = "schema_version";
/// The newest group commit of hot records (u64 LE); every record carries the one it was in.
pub const COMMIT_SEQ_KEY: &str = "commit_seq";
/// A UUID naming this data set, so an export target can tell whose copy it holds.
pub const INSTANCE_KEY: &str = "instance_id";

pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
pub const USER_EMAILS: TableDefinition<&str, u128> = TableDefinition::new("user_emails");
pub const SITE_KEYS: TableDefinition<&str, u128> = TableDefinition::new("site_keys");
pub const API_KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("api_keys");
pub const API_KEY_HASHES: TableDefinition<&[u8], u128> = TableDefinition::new("api_key_hashes");
pub const EXPERIMENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("experiments");
/// Sealed `BanditState` per experiment.
pub const BANDIT: TableDefinition<u128, &[u8]> = TableDefinition::new("bandit_state");
pub const ASSIGNMENTS: TableDefinition<(u128, &str), &[u8]> = TableDefinition::new("assignments");
pub const CONVERSIONS: TableDefinition<(u128, &str, &str), &[u8]> =
    TableDefinition::new("conversions");
/// Where `samplit compact` rewrites those two in key order before renaming them back.
pub const ASSIGNMENTS_REPACK: TableDefinition<(u128, &str), &[u8]> =
    TableDefinition::new("assignments.repack");
pub const CONVERSIONS_REPACK: TableDefinition<(u128, &str, &str), &[u8]> =
    TableDefinition::new("conversions.repack");
/// `(experiment, hour since epoch, arm) -> (allocations, conversions)`.
pub const TIMESERIES: TableDefinition<(u128, i64, u32), (u64, u64)> =
    TableDefinition::new("timeseries");

/// `(experiment, weights version) -> weights`: what each assignment's propensity came from.
pub const WEIGHT_HISTORY: TableDefinition<(u128, u32), &[u8]> =
    TableDefinition::new("weight_history");

/// `(owner, seq) -> entry JSON`: one hash chain per owner.
pub const AUDIT: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("audit");
/// `owner -> {seq, hash}` of the newest entry.
pub const AUDIT_HEADS: TableDefinition<u128, &[u8]> = TableDefinition::new("audit_heads");

/// Webhook subscriptions, deliveries (with their attempt log) and the retry queue.
pub const WEBHOOKS: TableDefinition<u128, &[u8]> = TableDefinition::new("webhooks");
pub const DELIVERIES: TableDefinition<u128, &[u8]> = TableDefinition::new("webhook_deliveries");
/// `delivery -> next attempt (ms)`: what the delivery worker still has to send.
pub const PENDING: TableDefinition<u128, i64> = TableDefinition::new("webhook_pending");
/// `(experiment, event)`: one-off events already emitted (winner found, SRM detected).
pub const EVENT_MARKS: TableDefinition<(u128, &str), ()> = TableDefinition::new("event_marks");

/// `(experiment, wave number) -> wave JSON`: each campaign wave's links and counts.
pub const CAMPAIGN_WAVES: TableDefinition<(u128, u32), &[u8]> =
    TableDefinition::new("campaign_waves");
/// The email outbox: `(experiment, event, owner) -> email JSON`, one per event and owner.
pub const EMAILS: TableDefinition<(u128, &str, u128), &[u8]> = TableDefinition::new("emails");
/// `(experiment, event, owner) -> next attempt (ms)`: what the email worker still has to send.
pub const EMAIL_PENDING: TableDefinition<(u128, &str, u128), i64> =
    TableDefinition::new("email_pending");

/// Every table, for the places that must visit them all (creation, backup, usage), so a
/// new table cannot be left out of one: `every_table!(m, a, b)` expands to
/// `m!(a, b, META, USERS, …)`.
macro_rules! every_table {
    ($m:ident $(, $arg:expr)*) => {
        $m!(
            $($arg,)*
            META,
            USERS,
            USER_EMAILS,
            SITE_KEYS,
            API_KEYS,
            API_KEY_HASHES,
            EXPERIMENTS,
            BANDIT,
            ASSIGNMENTS,
            CONVERSIONS,
            TIMESERIES,
            WEIGHT_HISTORY,
            AUDIT,
            AUDIT_HEADS,
            WEBHOOKS,
            DELIVERIES,
            PENDING,
            EVENT_MARKS,
            CAMPAIGN_WAVES,
            EMAILS,
            EMAIL_PENDING,
        )
    };
}
pub(crate) use every_table;

/// Opening a table in a write transaction creates it; doing it for all at once means
/// readers never meet a missing table.
pub fn create_all(w: &WriteTransaction) -> Result<(), redb::TableError> {
    macro_rules! open_each {
        ($w:expr, $($t:expr),* $(,)?) => { $( $w.open_table($t)?; )* };
    }
    every_table!(open_each, w);
    Ok(())
}
