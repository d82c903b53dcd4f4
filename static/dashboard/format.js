// Formatting helpers. Missing values render as an em dash so tables never show "NaN".

const DASH = '—';
const isNum = (x) => typeof x === 'number' && Number.isFinite(x);

export function int(x) {
  return isNum(x) ? Math.round(x).toLocaleString('en-US') : DASH;
}

/** 0.0712 -> "7.12%". Small probabilities keep their meaning: "<0.1%", ">99.9%". */
export function pct(x, digits = 1) {
  if (!isNum(x)) return DASH;
  const v = x * 100;
  if (x > 0 && v < 10 ** -digits) return `<${(10 ** -digits).toFixed(digits)}%`;
  if (x < 1 && v > 100 - 10 ** -digits) return `>${(100 - 10 ** -digits).toFixed(digits)}%`;
  return `${v.toFixed(digits)}%`;
}

/** Signed percentage, for lifts: "+16.0%". */
export function signedPct(x, digits = 1) {
  if (!isNum(x)) return DASH;
  const sign = x > 0 ? '+' : x < 0 ? '−' : '±';
  return `${sign}${Math.abs(x * 100).toFixed(digits)}%`;
}

export function signedInt(x) {
  if (!isNum(x)) return DASH;
  const sign = x > 0 ? '+' : x < 0 ? '−' : '±';
  return `${sign}${Math.abs(Math.round(x)).toLocaleString('en-US')}`;
}

export function num(x, digits = 2) {
  return isNum(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits }) : DASH;
}

/** Expected loss is an absolute rate difference; show it in percentage points. */
export function loss(x) {
  if (!isNum(x)) return DASH;
  if (x === 0) return '0 pp';
  const pp = x * 100;
  return pp < 0.001 ? '<0.001 pp' : `${pp.toPrecision(2)} pp`;
}

export function interval(ci) {
  if (!Array.isArray(ci) || ci.length !== 2) return DASH;
  // A rate lies in [0, 1]; clamp in case an approximation strays outside.
  const clamp = (x) => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : x);
  return `${pct(clamp(ci[0]), 2)} – ${pct(clamp(ci[1]), 2)}`;
}

export function dateTime(iso) {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return DASH;
  return d.toLocaleString('en-US', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function shortTime(date, bucket) {
  const opts = bucket === 'hour'
    ? { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }
    : { month: 'short', day: 'numeric' };
  return date.toLocaleString('en-US', opts);
}

export const TYPE_LABEL = { ab_test: 'A/B test', multi_element: 'Multi-element', campaign: 'Campaign' };
export const CHANNEL_LABEL = { email: 'Email', push: 'Push' };
export const ALLOCATION_LABEL = { adaptive: 'Adaptive', fixed: 'Fixed' };
export const STATUSES = ['draft', 'running', 'paused', 'completed', 'archived'];

export function label(map, key) {
  return map[key] || key || DASH;
}

export function goalText(goal) {
  if (!goal) return DASH;
  if (goal.type === 'open') return 'Message opened';
  if (goal.type === 'click' && !goal.selector) return 'Click on a link in the message';
  if (goal.type === 'click') return `Click on ${goal.selector || '?'}`;
  if (goal.type === 'pageview') return `Page view of ${goal.url || '?'}`;
  if (goal.type === 'custom') return `Custom event “${goal.name || '?'}”`;
  return goal.type || DASH;
}
