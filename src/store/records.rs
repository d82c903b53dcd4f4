//! What is stored. Management records (users, keys, experiments) are JSON for readability
//! and schema tolerance; the hot records (assignments, conversions, bandit state) are
//! postcard, small and fast.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub site_key: String,
    pub created_at: i64,
    /// Locked out by an admin: no login, and no token or API key of theirs is accepted.
    #[serde(default)]
    pub disabled: bool,
    /// Session tokens carry the version they were issued under; bumping it (password
    /// change, disable) makes every older token invalid. Records before this field are 0.
    #[serde(default)]
    pub token_version: u32,
    /// Which events this user is emailed about; records from before are all on.
    #[serde(default)]
    pub notifications: NotificationPrefs,
}

/// The owner's choice of emails, one switch per event (all on unless turned off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationPrefs {
    #[serde(default = "on")]
    pub winner_found: bool,
    #[serde(default = "on")]
    pub srm_detected: bool,
    #[serde(default = "on")]
    pub completed: bool,
}

fn on() -> bool {
    true
}

impl Default for NotificationPrefs {
    fn default() -> Self {
        NotificationPrefs { winner_found: true, srm_detected: true, completed: true }
    }
}

impl NotificationPrefs {
    /// Whether the user wants email about `event` (`experiment.winner_found` ...); events
    /// without a switch are never emailed.
    pub fn wants(&self, event: &str) -> bool {
        match event {
            "experiment.winner_found" => self.winner_found,
            "experiment.srm_detected" => self.srm_detected,
            "experiment.completed" => self.completed,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The first characters of the key, so a person can tell keys apart.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A visitor's sticky answer. `arm == EXCLUDED` records a visitor outside the traffic share,
/// so they stay outside. Stored as `StoredAssignment` (see `encode_assignment`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssignmentRec {
    pub id: u128,
    pub arm: u16,
    pub weights_version: u32,
    /// The probability this visitor had of landing in `arm` when assigned.
    pub propensity: f64,
    pub at: i64,
    /// The group commit that wrote it (`commit_seq` in META), so exports can ask for
    /// exactly what is new since their last run.
    pub seq: u64,
}

pub const EXCLUDED: u16 = u16::MAX;

/// An assignment as schema 6 stores it. The id is left out when it is the one derived from
/// the key (`assignment_id`), as it is for every assignment made since schema 6: a random
/// 128-bit id took 19 of an assignment's 37 value bytes. Ids given out before keep theirs.
#[derive(Serialize, Deserialize)]
struct StoredAssignment {
    arm: u16,
    weights_version: u32,
    propensity: f64,
    at: i64,
    seq: u64,
    id: Option<u128>,
}

/// The id of `user`'s assignment in experiment `exp`: stable (a visitor has one assignment
/// per experiment, for good), so it need not be stored. A UUID of version 8 (custom) from
/// SHA-256 of the key.
pub fn assignment_id(exp: u128, user: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"samplit assignment\0");
    h.update(exp.to_be_bytes());
    h.update(user.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    u128::from_be_bytes(b)
}

pub fn encode_assignment(exp: u128, user: &str, rec: &AssignmentRec) -> Vec<u8> {
    let s = StoredAssignment {
        arm: rec.arm,
        weights_version: rec.weights_version,
        propensity: rec.propensity,
        at: rec.at,
        seq: rec.seq,
        id: (rec.id != assignment_id(exp, user)).then_some(rec.id),
    };
    postcard::to_allocvec(&s).expect("records serialize")
}

pub fn decode_assignment(
    exp: u128,
    user: &str,
    bytes: &[u8],
) -> Result<AssignmentRec, postcard::Error> {
    let s: StoredAssignment = postcard::from_bytes(bytes)?;
    Ok(AssignmentRec {
        id: s.id.unwrap_or_else(|| assignment_id(exp, user)),
        arm: s.arm,
        weights_version: s.weights_version,
        propensity: s.propensity,
        at: s.at,
        seq: s.seq,
    })
}

impl AssignmentRec {
    pub fn excluded(&self) -> bool {
        self.arm == EXCLUDED
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConversionRec {
    pub arm: u16,
    pub value: Option<f64>,
    pub at: i64,
    /// The group commit that wrote it, as in `AssignmentRec`.
    pub seq: u64,
}

/// The assignment as schemas 5 stored it, a random id first; only the migrations use it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct AssignmentRecV5 {
    pub id: u128,
    pub arm: u16,
    pub weights_version: u32,
    pub propensity: f64,
    pub at: i64,
    pub seq: u64,
}

/// The record shapes of schema 4 and earlier, before `seq`; only the migration reads them.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct AssignmentRecV4 {
    pub id: u128,
    pub arm: u16,
    pub weights_version: u32,
    pub propensity: f64,
    pub at: i64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ConversionRecV4 {
    pub arm: u16,
    pub value: Option<f64>,
    pub at: i64,
}

/// The bandit state (per-arm counters and weights) is plain engine data; the counter rules
/// that change it live beside it in `engine::counting`.
pub use crate::engine::counting::{ArmState, BanditState};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_id_is_not_stored_and_an_older_id_is_kept() {
        let (exp, user) = (0x1234_5678_9abc_def0_u128 << 64, "0123456789abcdef0123456789abcdef");
        let mut rec = AssignmentRec {
            id: assignment_id(exp, user),
            arm: 1,
            weights_version: 3,
            propensity: 0.375,
            at: 1_764_806_400_000,
            seq: 4_000,
        };
        let new = encode_assignment(exp, user, &rec);
        assert!(new.len() <= 20, "{} bytes", new.len());
        assert_eq!(decode_assignment(exp, user, &new).unwrap(), rec);
        // The id depends on both halves of the key and reads as a version 8 UUID.
        assert_ne!(assignment_id(exp, "other"), rec.id);
        assert_ne!(assignment_id(exp + 1, user), rec.id);
        assert_eq!(uuid::Uuid::from_u128(rec.id).get_version_num(), 8);

        rec.id = 0xdead_beef_u128 << 90;
        let old = encode_assignment(exp, user, &rec);
        assert_eq!(decode_assignment(exp, user, &old).unwrap(), rec, "a random id survives");
        assert!(old.len() > new.len());
    }
}
