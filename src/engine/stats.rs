//! PLACEHOLDER until the exact quadrature engine lands: crude grid integration.
#![allow(clippy::needless_range_loop)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BetaPosterior {
    pub alpha: f64,
    pub beta: f64,
}
impl BetaPosterior {
    pub fn from_counts(allocations: u64, conversions: u64) -> Self {
        let c = conversions.min(allocations);
        BetaPosterior { alpha: 1.0 + c as f64, beta: 1.0 + (allocations - c) as f64 }
    }
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
    pub fn sd(&self) -> f64 {
        let s = self.alpha + self.beta;
        (self.alpha * self.beta / (s * s * (s + 1.0))).sqrt()
    }
    pub fn credible_interval(&self, _level: f64) -> (f64, f64) {
        (self.mean() - 1.96 * self.sd(), self.mean() + 1.96 * self.sd())
    }
}
pub struct ArmSummary {
    pub prob_best: f64,
    pub expected_loss: f64,
}
pub fn prob_best(arms: &[BetaPosterior]) -> Vec<f64> {
    summarize(arms).into_iter().map(|s| s.prob_best).collect()
}
pub fn summarize(arms: &[BetaPosterior]) -> Vec<ArmSummary> {
    let k = arms.len();
    let n = 4000;
    let mut pb = vec![0.0; k];
    for s in 0..n {
        let x = (s as f64 + 0.5) / n as f64;
        let pdf: Vec<f64> = arms.iter().map(|a| ln_pdf(x, a).exp()).collect();
        let mut cdf = vec![0.0; k];
        for (i, a) in arms.iter().enumerate() {
            let m = 200;
            let mut acc = 0.0;
            for t in 0..m {
                let y = x * (t as f64 + 0.5) / m as f64;
                acc += ln_pdf(y, a).exp();
            }
            cdf[i] = (acc * x / m as f64).min(1.0);
        }
        for i in 0..k {
            let mut p = pdf[i];
            for j in 0..k {
                if j != i {
                    p *= cdf[j];
                }
            }
            pb[i] += p / n as f64;
        }
    }
    let tot: f64 = pb.iter().sum();
    pb.into_iter().map(|p| ArmSummary { prob_best: p / tot, expected_loss: 0.0 }).collect()
}
fn ln_pdf(x: f64, a: &BetaPosterior) -> f64 {
    (a.alpha - 1.0) * x.ln() + (a.beta - 1.0) * (1.0 - x).ln() - ln_beta(a.alpha, a.beta)
}
fn ln_beta(a: f64, b: f64) -> f64 {
    lg(a) + lg(b) - lg(a + b)
}
fn lg(x: f64) -> f64 {
    let g = 7.0;
    let c = [
        0.999_999_999_999_809_9,
        676.5203681218851,
        -1259.1392167224028,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507343278686905,
        -0.13857109526572012,
        9.984_369_578_019_572e-6,
        1.5056327351493116e-7,
    ];
    let x = x - 1.0;
    let mut a = c[0];
    let t = x + g + 0.5;
    for (i, ci) in c.iter().enumerate().skip(1) {
        a += ci / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}
pub struct Srm {
    pub chi2: f64,
    pub p_value: f64,
}
pub fn srm(_observed: &[u64], _expected: &[f64]) -> Option<Srm> {
    None
}
pub fn prob_beats(a: BetaPosterior, b: BetaPosterior) -> f64 {
    prob_best(&[a, b])[0]
}
