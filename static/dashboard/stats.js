// Pure statistics helpers for the charts (no DOM, unit-tested with node).
// The server computes the authoritative numbers; these only draw posteriors and
// fill in prob_best for time series from an older server that omits it.

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61502916214059, 12.507343278686905, -0.13857109526572012,
  9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7; ~15 significant digits). */
export function lgamma(x) {
  if (x < 0.5) {
    // Reflection keeps accuracy near 0.
    return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lgamma(1 - x);
  }
  x -= 1;
  let a = LANCZOS[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

export function lbeta(a, b) {
  return lgamma(a) + lgamma(b) - lgamma(a + b);
}

/** Beta(a, b) density at x, computed in log space so a, b in the millions are fine. */
export function betaPdf(x, a, b) {
  if (x < 0 || x > 1) return 0;
  if (x === 0) return a < 1 ? Infinity : a === 1 ? b : 0;
  if (x === 1) return b < 1 ? Infinity : b === 1 ? a : 0;
  return Math.exp((a - 1) * Math.log(x) + (b - 1) * Math.log1p(-x) - lbeta(a, b));
}

// Continued fraction for the regularized incomplete beta (modified Lentz).
function betacf(x, a, b) {
  const TINY = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let f = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let num = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d; if (Math.abs(d) < TINY) d = TINY; d = 1 / d;
    c = 1 + num / c; if (Math.abs(c) < TINY) c = TINY;
    f *= d * c;
    num = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d; if (Math.abs(d) < TINY) d = TINY; d = 1 / d;
    c = 1 + num / c; if (Math.abs(c) < TINY) c = TINY;
    const delta = d * c;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-14) break;
  }
  return f;
}

/** Regularized incomplete beta I_x(a, b) = Beta(a, b) CDF at x. */
export function betaCdf(x, a, b) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = a * Math.log(x) + b * Math.log1p(-x) - lbeta(a, b);
  if (x < (a + 1) / (a + b + 2)) return Math.exp(lnFront) * betacf(x, a, b) / a;
  return 1 - Math.exp(lnFront) * betacf(1 - x, b, a) / b;
}

/** Inverse CDF by bisection (60 halvings: far below pixel precision). */
export function betaQuantile(p, a, b) {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (betaCdf(mid, a, b) < p) lo = mid; else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * The x range that shows every arm's posterior: from the smallest 0.05% quantile to
 * the largest 99.95% quantile, padded a little, clamped to [0, 1].
 */
export function densityRange(posteriors) {
  let lo = 1;
  let hi = 0;
  for (const { alpha, beta } of posteriors) {
    lo = Math.min(lo, betaQuantile(0.0005, alpha, beta));
    hi = Math.max(hi, betaQuantile(0.9995, alpha, beta));
  }
  if (!(hi > lo)) return [0, 1];
  const pad = (hi - lo) * 0.05;
  return [Math.max(0, lo - pad), Math.min(1, hi + pad)];
}

/** n + 1 evenly spaced points of the Beta(a, b) density over [lo, hi]. */
export function densityCurve(a, b, lo, hi, n = 200) {
  const pts = [];
  for (let i = 0; i <= n; i++) {
    const x = lo + ((hi - lo) * i) / n;
    const y = betaPdf(x, a, b);
    pts.push([x, Number.isFinite(y) ? y : 0]);
  }
  return pts;
}

/**
 * P(arm i has the highest rate) for Beta posteriors, by integrating
 * f_i(x) · Π_{j≠i} F_j(x) over a grid covering all the mass. Used only when the
 * server's time series lacks prob_best.
 */
export function probBest(posteriors, n = 800) {
  const k = posteriors.length;
  if (k === 0) return [];
  if (k === 1) return [1];
  const [lo, hi] = densityRange(posteriors);
  const dx = (hi - lo) / n;
  const out = new Array(k).fill(0);
  for (let step = 0; step < n; step++) {
    const x = lo + (step + 0.5) * dx;
    const pdf = posteriors.map((p) => betaPdf(x, p.alpha, p.beta));
    const cdf = posteriors.map((p) => betaCdf(x, p.alpha, p.beta));
    for (let i = 0; i < k; i++) {
      let prod = pdf[i] * dx;
      for (let j = 0; j < k && prod > 0; j++) if (j !== i) prod *= cdf[j];
      out[i] += prod;
    }
  }
  const total = out.reduce((sum, v) => sum + v, 0);
  return total > 0 ? out.map((v) => v / total) : out.map(() => 1 / k);
}

/** Nice round tick values for an axis over [min, max]. */
export function niceTicks(min, max, count = 5) {
  if (!(max > min)) return [min];
  const span = max - min;
  const rough = span / count;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const norm = rough / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}
