//! `samplit demo`: the seed scenario of the product overview, run through the real
//! assign/convert path. Two elements (CTA button, hero copy) × three variants = nine
//! combinations whose true rates hide an interaction: CTA-B is the best button only with
//! copy Y. 10,000 simulated visitors arrive; the adaptive experiment should find B + Y.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Admin;
use crate::engine::model::ExperimentInput;
use crate::error::{AppError, AppResult, Code};
use crate::service::accounts::{NewUser, Principal};
use crate::service::analytics::{Interaction, RecommendationOut};
use crate::service::tracker::Assignment;
use crate::store::api::UserStore;

pub const DEMO_EMAIL: &str = "demo@samplit.local";
pub const CTAS: [&str; 3] = ["CTA-A", "CTA-B", "CTA-C"];
pub const COPIES: [&str; 3] = ["Copy-X", "Copy-Y", "Copy-Z"];

/// True conversion rates, rows CTA A..C, columns copy X..Z. B + Y is best (12%), but B is
/// the worst button with X or Z, and C is the best button on average: judged element by
/// element, one would pick C + Y.
pub const TRUE_RATES: [[f64; 3]; 3] =
    [[0.050, 0.060, 0.055], [0.040, 0.120, 0.040], [0.080, 0.070, 0.080]];

/// Visitors per wave: they are in flight together (sharing group commits, as real traffic
/// does), and the weights are refreshed between waves, like the simulator's update_every.
/// Bucketing is by hash and weights change only between waves, so a seed gives one result.
const IN_FLIGHT: usize = 100;

/// What `samplit demo` answers; `metadata` is written as metadata.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoReport {
    pub account: DemoAccount,
    pub metadata: DemoMetadata,
    pub matrix_csv: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoAccount {
    pub email: String,
    /// Only when this run created the account.
    pub password: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoMetadata {
    pub experiment_id: Uuid,
    pub visitors: u64,
    pub seed: u64,
    pub true_rates: Vec<TrueRate>,
    pub true_best: String,
    pub identified_best: String,
    pub identified_prob_best: f64,
    pub found_true_best: bool,
    pub prob_best: Vec<ProbBest>,
    /// As the analytics report them.
    pub interaction: Option<Interaction>,
    pub recommendation: RecommendationOut,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrueRate {
    pub combination: String,
    pub true_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbBest {
    pub combination: Option<String>,
    pub prob_best: Option<f64>,
}

impl Admin {
    pub async fn demo(
        &self,
        visitors: u64,
        seed: u64,
        password: Option<String>,
    ) -> AppResult<DemoReport> {
        if visitors == 0 || visitors > 1_000_000 {
            return Err(AppError::validation("visitors", "must be 1 to 1,000,000"));
        }
        let (user, created_password) = match self.store.user_by_email(DEMO_EMAIL)? {
            Some(u) => (u, None),
            None => {
                let pw = password
                    .unwrap_or_else(|| crate::service::secrets::random_hex32()[..16].to_string());
                let new = NewUser {
                    email: DEMO_EMAIL.into(),
                    password: pw.clone(),
                    name: Some("Demo".into()),
                    role: None,
                    may_be_admin: false,
                };
                (self.accounts.create_user(new, false, "demo").await?, Some(pw))
            }
        };
        let who = Principal { user: user.clone() };
        let variants = |names: &[&str; 3]| -> Value {
            Value::Array(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| json!({"name": n, "is_control": i == 0, "content": {"text": n}}))
                    .collect(),
            )
        };
        let input: ExperimentInput = serde_json::from_value(json!({
            "name": "Demo: hero CTA × copy", "type": "multi_element", "allocation": "adaptive",
            "seed": format!("samplit-demo-{seed}"),
            "description": "The seed scenario: CTA-B is best only with copy Y.",
            "goal": {"type": "click", "selector": "#buy"},
            "elements": [
                {"name": "CTA button", "selector": "#cta", "variants": variants(&CTAS)},
                {"name": "Hero copy", "selector": "#hero", "variants": variants(&COPIES)}
            ]
        }))
        .map_err(|e| AppError::internal(format!("demo definition: {e}")))?;
        let exp = self.experiments.create_experiment(&who, input).await?;
        let id: Uuid = exp.id;
        self.experiments
            .transition(&who, id, crate::engine::model::Transition::Start, None)
            .await?;

        let site = user.site_key.clone();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut next = 0u64;
        while next < visitors {
            let mut batch = tokio::task::JoinSet::new();
            for _ in 0..IN_FLIGHT.min((visitors - next) as usize) {
                let user_id = format!("demo-{seed}-{next}");
                next += 1;
                let luck: f64 = rng.random();
                let svc = self.tracker.clone();
                let site = site.clone();
                batch.spawn(async move {
                    let answer = svc.assign(&site, id, &user_id, false).await?;
                    let v: Assignment = serde_json::from_str(&answer)
                        .map_err(|e| AppError::internal(e.to_string()))?;
                    let cta = index_of(&v, 0, &CTAS)?;
                    let copy = index_of(&v, 1, &COPIES)?;
                    if luck < TRUE_RATES[cta][copy] {
                        svc.convert(&site, id, &user_id, None, None).await?;
                    }
                    Ok::<(), AppError>(())
                });
            }
            while let Some(r) = batch.join_next().await {
                r.map_err(|e| AppError::internal(e.to_string()))??;
            }
            self.writer.refresh_now(id).await?;
        }

        // Read the results as the dashboard would.
        let analytics = self.analytics.analytics(&who, id)?;
        let arms = &analytics.arms;
        let mut matrix =
            String::from("cta,copy,visitors,conversions,conversion_rate,true_rate,prob_best\n");
        let mut identified = (0usize, f64::MIN);
        for (a, arm) in arms.iter().enumerate() {
            let (cta, copy) = (a / 3, a % 3);
            let pb = arm.prob_best;
            if pb > identified.1 {
                identified = (a, pb);
            }
            matrix.push_str(&format!(
                "{},{},{},{},{:.6},{},{:.6}\n",
                CTAS[cta],
                COPIES[copy],
                arm.allocations,
                arm.conversions,
                arm.conversion_rate,
                TRUE_RATES[cta][copy],
                pb
            ));
        }
        let true_best = (0..9)
            .max_by(|&a, &b| TRUE_RATES[a / 3][a % 3].total_cmp(&TRUE_RATES[b / 3][b % 3]))
            .unwrap_or(0);
        let label = |a: usize| format!("{} + {}", CTAS[a / 3], COPIES[a % 3]);
        let metadata = DemoMetadata {
            experiment_id: id,
            visitors,
            seed,
            true_rates: (0..9)
                .map(|a| TrueRate { combination: label(a), true_rate: TRUE_RATES[a / 3][a % 3] })
                .collect(),
            true_best: label(true_best),
            identified_best: label(identified.0),
            identified_prob_best: identified.1,
            found_true_best: identified.0 == true_best,
            prob_best: arms
                .iter()
                .map(|a| ProbBest {
                    combination: Some(a.name.clone()),
                    prob_best: Some(a.prob_best),
                })
                .collect(),
            interaction: analytics.interaction.clone(),
            recommendation: analytics.recommendation.clone(),
        };
        Ok(DemoReport {
            account: DemoAccount { email: DEMO_EMAIL.into(), password: created_password },
            metadata,
            matrix_csv: matrix,
        })
    }
}

fn index_of(answer: &Assignment, element: usize, names: &[&str; 3]) -> AppResult<usize> {
    let name = answer.variants.get(element).map_or("", |v| v.variant_name.as_str());
    names
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| AppError::new(Code::Internal, format!("unexpected variant {name:?}")))
}
