//! Exports of one experiment: every assignment with its conversion, one CSV row each,
//! streamed from a read snapshot in chunks so a million rows never sit in memory; and the
//! per-arm summary.

use serde_json::Value;
use std::fmt::Write as _;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::auth::Principal;
use super::{Services, rfc3339};
use crate::error::AppResult;

const CHUNK_BYTES: usize = 64 * 1024;

/// Quotes a CSV field when it needs it (RFC 4180).
/// Values starting like a formula are prefixed with `'`, since user ids come from the public
/// tracker and spreadsheets would run them.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

impl Services {
    /// Starts streaming the assignments CSV; chunks arrive on the returned channel.
    pub fn export_assignments_csv(
        &self,
        who: &Principal,
        id: Uuid,
    ) -> AppResult<mpsc::Receiver<Result<Vec<u8>, std::io::Error>>> {
        let entry = self.owned(who, id)?;
        let store = self.store.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let exp = &entry.exp;
            let arms = exp.arms();
            let mut buf = String::from("user_id,assignment_id,assigned_at,arm_id,arm");
            for el in &exp.elements {
                let _ = write!(buf, ",{}", csv_field(&format!("variant:{}", el.name)));
            }
            buf.push_str(",weights_version,propensity,converted,converted_at,value\n");
            let mut failed = false;
            let result = store.scan_assignments(id, |user, rec, conv| {
                let (arm_id, arm_name, variants) = if rec.excluded() {
                    (
                        "excluded".to_string(),
                        "excluded".to_string(),
                        vec![String::new(); exp.elements.len()],
                    )
                } else {
                    let arm = &arms[usize::from(rec.arm).min(arms.len() - 1)];
                    let vs = arm
                        .variant_indices
                        .iter()
                        .zip(&exp.elements)
                        .map(|(&v, e)| e.variants[v].name.clone())
                        .collect();
                    (arm.id.clone(), arm.name.clone(), vs)
                };
                let _ = write!(
                    buf,
                    "{},{},{},{},{}",
                    csv_field(user),
                    Uuid::from_u128(rec.id),
                    rfc3339(rec.at),
                    arm_id,
                    csv_field(&arm_name)
                );
                for v in variants {
                    let _ = write!(buf, ",{}", csv_field(&v));
                }
                let _ = writeln!(
                    buf,
                    ",{},{},{},{},{}",
                    rec.weights_version,
                    rec.propensity,
                    conv.is_some(),
                    conv.map(|c| rfc3339(c.at)).unwrap_or_default(),
                    conv.and_then(|c| c.value).map(|v| v.to_string()).unwrap_or_default()
                );
                if buf.len() >= CHUNK_BYTES {
                    let chunk = std::mem::take(&mut buf).into_bytes();
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        failed = true;
                        return false;
                    }
                }
                true
            });
            if failed {
                return;
            }
            match result {
                Ok(()) => {
                    let _ = tx.blocking_send(Ok(buf.into_bytes()));
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                }
            }
        });
        Ok(rx)
    }

    /// The per-arm summary as CSV, from the analytics.
    pub fn export_summary_csv(&self, who: &Principal, id: Uuid) -> AppResult<String> {
        let a = self.analytics(who, id)?;
        let mut out = String::from(
            "arm_id,arm,allocations,conversions,conversion_rate,adjusted_conversion_rate,ci_low,ci_high,prob_best,expected_loss,lift_vs_control,traffic_weight\n",
        );
        let num = |v: &Value| v.as_f64().map(|f| f.to_string()).unwrap_or_default();
        for arm in a["arms"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                arm["arm_id"].as_str().unwrap_or(""),
                csv_field(arm["name"].as_str().unwrap_or("")),
                arm["allocations"],
                arm["conversions"],
                num(&arm["conversion_rate"]),
                num(&arm["adjusted_conversion_rate"]),
                num(&arm["credible_interval"][0]),
                num(&arm["credible_interval"][1]),
                num(&arm["prob_best"]),
                num(&arm["expected_loss"]),
                num(&arm["lift_vs_control"]),
                num(&arm["traffic_weight"]),
            );
        }
        Ok(out)
    }
}
