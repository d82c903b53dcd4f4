//! Reading the audit trail. Entries are written by the store, inside the transaction of the
//! change they record (see `store::audit`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::Principal;
use crate::error::{AppError, AppResult};
use crate::store::Store;
use crate::store::api::AuditStore;

/// One entry of an owner's hash chain. `hash` is SHA-256 (hex) over `prev_hash` followed by
/// the entry's canonical JSON without `hash` (keys sorted, no spaces).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub experiment_id: Option<Uuid>,
    /// What the change recorded; its shape depends on `action`.
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub total: usize,
    /// The newest hash of the caller's chain.
    pub head: String,
}

/// Which chains `GET /audit/verify` recomputes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerifyScope {
    /// The caller's own chain.
    Own,
    /// Every account's chain, as `samplit audit verify` does (admins only).
    All,
}

/// The first entry of a chain that does not verify.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BrokenLink {
    /// Whose chain it is.
    pub owner: Uuid,
    pub seq: u64,
    pub reason: String,
}

/// GET /audit/verify: the chains recomputed from the stored entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    pub verified: bool,
    /// Entries recomputed.
    pub entries: u64,
    pub scope: VerifyScope,
    /// The first broken entry (of the first broken chain), if any.
    pub first_broken: Option<BrokenLink>,
    /// The first broken entry of each broken chain.
    pub broken: Vec<BrokenLink>,
    pub checked_at: String,
}

/// Reading the owners' hash chains.
#[derive(Clone)]
pub struct AuditTrail {
    store: Store,
}

impl AuditTrail {
    pub fn new(store: Store) -> AuditTrail {
        AuditTrail { store }
    }

    /// The caller's chain, oldest first, optionally for one experiment.
    pub fn audit_page(
        &self,
        who: &Principal,
        experiment: Option<Uuid>,
        offset: usize,
        limit: usize,
    ) -> AppResult<AuditPage> {
        let (raw, total, head) = self.store.audit_entries(who.id(), experiment, offset, limit)?;
        let items = raw
            .into_iter()
            .map(|e| {
                serde_json::from_value(e)
                    .map_err(|e| AppError::internal(format!("unreadable audit entry: {e}")))
            })
            .collect::<AppResult<_>>()?;
        Ok(AuditPage { items, total, head })
    }

    /// Recomputes the caller's chain, or with `VerifyScope::All` (admins only) every chain,
    /// with the same check as `samplit audit verify`. Reads every entry in scope: call from
    /// a blocking thread.
    pub fn verify(&self, who: &Principal, scope: VerifyScope) -> AppResult<AuditVerification> {
        let (entries, broken) = match scope {
            VerifyScope::Own => self.store.verify_audit_of(who.id())?,
            VerifyScope::All => {
                who.require_admin()?;
                self.store.verify_audit()?
            }
        };
        let broken: Vec<BrokenLink> = broken
            .into_iter()
            .map(|b| BrokenLink { owner: b.owner, seq: b.seq, reason: b.reason })
            .collect();
        Ok(AuditVerification {
            verified: broken.is_empty(),
            entries,
            scope,
            first_broken: broken.first().cloned(),
            broken,
            checked_at: super::rfc3339(super::now_ms()),
        })
    }
}
