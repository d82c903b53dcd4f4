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
}
