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
/// so they stay outside.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
