// Results of one experiment: recommendation, SRM warning, per-arm table, posterior
// densities, time series, and (multi-element) combinations heat map + main effects.
import { h, mount, loading, errorPanel, emptyState, uid } from '../dom.js';
import { api, download } from '../api.js';
import { showError } from '../ui.js';
import * as f from '../format.js';
import { densityRange, densityCurve, probBest } from '../stats.js';
import { mountChart, lineChart, stackedShareChart, heatmap, barList, legend, color } from '../charts.js';

const MAX_CHART_ARMS = 10;
const DECISION = {
  keep_running: { title: 'Keep running', cls: 'rec-running' },
  declare_winner: { title: 'A winner is found', cls: 'rec-winner' },
  stop_no_difference: { title: 'No meaningful difference', cls: 'rec-nodiff' },
};

/** Ids of the control variants, to mark the control arm. */
export function controlVariantIds(exp) {
  return new Set((exp.elements || []).flatMap((el) => (el.variants || []).filter((v) => v.is_control).map((v) => v.id)));
}

export function isControlArm(arm, controls) {
  if (typeof arm.is_control === 'boolean') return arm.is_control;
  const ids = arm.variant_ids && arm.variant_ids.length ? arm.variant_ids : [arm.arm_id];
  return controls.size > 0 && ids.every((id) => controls.has(id));
}

/** Variant id -> name, for labelling combinations and main effects. */
export function variantNames(exp) {
  const map = new Map();
  for (const el of exp.elements || []) for (const v of el.variants || []) map.set(v.id, v.name);
  return map;
}

export function armLabel(arm, names) {
  if (arm.name) return arm.name;
  if (arm.variant_ids && arm.variant_ids.length) return arm.variant_ids.map((id) => names.get(id) || id.slice(0, 8)).join(' · ');
  return String(arm.arm_id).slice(0, 8);
}

/** The arms the charts show: all, or the MAX_CHART_ARMS most likely to be best. */
function chartArms(arms) {
  if (arms.length <= MAX_CHART_ARMS) return arms;
  return [...arms].sort((a, b) => (b.prob_best || 0) - (a.prob_best || 0)).slice(0, MAX_CHART_ARMS);
}

function recommendation(a, names) {
  const rec = a.recommendation || {};
  const d = DECISION[rec.decision] || { title: rec.decision || 'No recommendation yet', cls: 'rec-running' };
  const winner = rec.winner_arm_id ? (a.arms || []).find((x) => x.arm_id === rec.winner_arm_id) : null;
  return h('section', { class: ['recommendation', d.cls], 'data-testid': 'recommendation', 'data-decision': rec.decision || '', 'aria-live': 'polite' },
    h('h3', null, d.title, winner ? `: ${armLabel(winner, names)}` : ''),
    h('p', { 'data-testid': 'recommendation-reason' }, rec.reason || 'Not enough data for a recommendation yet.'));
}

function srmWarning(a) {
  if (!a.srm || !a.srm.mismatch) return null;
  return h('div', { class: 'banner banner-warning', role: 'alert', 'data-testid': 'srm-warning' },
    h('strong', null, 'Sample ratio mismatch. '),
    `The visitors did not split between the arms the way the allocator intended${Number.isFinite(a.srm.p_value) ? ` (p = ${a.srm.p_value.toPrecision(2)})` : ''}. `,
    'This usually means a tracking problem — the snippet missing on some pages, redirects, caching or bots — so treat these results with caution until it is fixed.');
}

function probBar(p) {
  const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
  bar.style.width = `${Math.max(0, Math.min(1, p || 0)) * 100}%`; // CSSOM: allowed by the CSP
  return h('span', { class: 'bar-cell' }, h('span', { class: 'bar-track' }, bar), h('span', { class: 'bar-value' }, f.pct(p)));
}

function resultsTable(a, exp) {
  const controls = controlVariantIds(exp);
  const names = variantNames(exp);
  const arms = a.arms || [];
  const best = arms.reduce((m, x) => (x.prob_best > (m ? m.prob_best : -1) ? x : m), null);
  const head = ['Arm', 'Visitors', 'Conversions', 'Rate', '95% credible interval', 'P(best)', 'Expected loss', 'Lift vs control', 'Traffic weight'];
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Results per arm' },
    h('table', { class: 'table results', 'data-testid': 'results-table' },
      h('caption', { class: 'visually-hidden' }, 'Results per arm'),
      h('thead', null, h('tr', null, head.map((t, i) => h('th', { scope: 'col', class: i ? 'num' : null }, t)))),
      h('tbody', null, arms.map((arm, i) => {
        const control = isControlArm(arm, controls);
        const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
        swatch.style.backgroundColor = color(i);
        return h('tr', { class: arm === best && arm.allocations > 0 ? 'leader' : null, 'data-testid': 'results-row', 'data-arm-id': arm.arm_id },
          h('th', { scope: 'row' }, swatch, armLabel(arm, names), control ? h('span', { class: 'tag' }, 'control') : null,
            arm === best && arm.allocations > 0 ? h('span', { class: 'tag tag-leader' }, 'leader') : null),
          h('td', { class: 'num' }, f.int(arm.allocations)),
          h('td', { class: 'num' }, f.int(arm.conversions)),
          h('td', { class: 'num' }, f.pct(arm.conversion_rate, 2)),
          h('td', { class: 'num nowrap' }, f.interval(arm.credible_interval)),
          h('td', { class: 'num' }, probBar(arm.prob_best)),
          h('td', { class: 'num' }, f.loss(arm.expected_loss)),
          h('td', { class: ['num', arm.lift_vs_control > 0 ? 'pos' : arm.lift_vs_control < 0 ? 'neg' : null] }, control ? 'baseline' : f.signedPct(arm.lift_vs_control)),
          h('td', { class: 'num' }, f.pct(arm.traffic_weight)));
      }))));
}

function posteriorChart(a, exp, signal) {
  const names = variantNames(exp);
  const all = (a.arms || []).filter((x) => x.posterior && x.posterior.alpha > 0 && x.posterior.beta > 0);
  if (!all.length) return null;
  const arms = chartArms(all);
  const idx = new Map((a.arms || []).map((x, i) => [x.arm_id, i]));
  const [lo, hi] = densityRange(arms.map((x) => x.posterior));
  const series = arms.map((arm) => ({
    name: armLabel(arm, names), color: color(idx.get(arm.arm_id)),
    points: densityCurve(arm.posterior.alpha, arm.posterior.beta, lo, hi, 160),
  }));
  const yMax = Math.max(...series.flatMap((x) => x.points.map((p) => p[1]))) * 1.05 || 1;
  const box = h('div', { class: 'chart-box' });
  const fig = h('figure', { class: 'chart-figure' },
    h('figcaption', null, h('h3', null, 'Where the true conversion rates probably are'),
      h('p', { class: 'hint' }, 'Posterior density of each arm’s conversion rate. Narrow peaks mean certainty; little overlap means a clear difference.',
        all.length > arms.length ? ` Showing the ${arms.length} arms most likely to be best of ${all.length}.` : '')),
    box, legend(series));
  queueMicrotask(() => mountChart(box, (width) => lineChart({
    width, height: 240, series, xDomain: [lo, hi], yDomain: [0, yMax], hideY: true, yLabel: 'density',
    xFormat: (v) => f.pct(v, hi - lo < 0.02 ? 2 : 1), yFormat: () => '', markers: false, fillUnder: true,
    title: 'Posterior densities', desc: series.map((x) => x.name).join(', '), testid: 'chart-posterior',
  }), signal));
  return fig;
}

/** Fill in cumulative prob_best when the server's time series lacks it. */
export function cumulativeProbBest(buckets, armIds) {
  const totals = new Map(armIds.map((id) => [id, { n: 0, c: 0 }]));
  return buckets.map((b) => {
    const byId = new Map((b.arms || []).map((x) => [x.arm_id, x]));
    for (const id of armIds) {
      const x = byId.get(id);
      if (x) { totals.get(id).n += x.allocations || 0; totals.get(id).c += x.conversions || 0; }
    }
    const have = armIds.every((id) => byId.has(id) && Number.isFinite(byId.get(id).prob_best));
    if (have) return armIds.map((id) => byId.get(id).prob_best);
    if (armIds.length > 12) return armIds.map(() => NaN); // too costly to integrate in the browser
    return probBest(armIds.map((id) => ({ alpha: 1 + totals.get(id).c, beta: 1 + totals.get(id).n - totals.get(id).c })), 200);
  });
}

const BUCKET_MS = { hour: 3600e3, day: 86400e3 };

function timeseriesSection(exp, a, signal) {
  const names = variantNames(exp);
  const started = exp.started_at ? Date.parse(exp.started_at) : Date.now();
  let bucket = Date.now() - started < 3 * 86400e3 ? 'hour' : 'day';
  const body = h('div', { class: 'timeseries-body' });
  const buttons = ['hour', 'day'].map((b) => h('button', {
    type: 'button', class: 'seg', 'aria-pressed': String(b === bucket), 'data-testid': `bucket-${b}`,
    onclick: () => { bucket = b; buttons.forEach((x) => x.setAttribute('aria-pressed', String(x.dataset.testid === `bucket-${b}`))); load(); },
  }, b === 'hour' ? 'By hour' : 'By day'));

  async function load() {
    mount(body, loading('Loading the time series…'));
    let ts;
    try {
      ts = await api.get(`/analytics/experiments/${encodeURIComponent(exp.id)}/timeseries`, { query: { bucket }, signal });
    } catch (err) {
      if (signal.aborted) return;
      mount(body, errorPanel(err, load));
      return;
    }
    const buckets = ((ts && ts.buckets) || []).filter((b) => b && b.start).sort((x, y) => Date.parse(x.start) - Date.parse(y.start));
    if (!buckets.length) {
      mount(body, emptyState('No traffic yet — the charts appear once visitors arrive.'));
      return;
    }
    const armOrder = (a && a.arms ? a.arms.map((x) => x.arm_id) : []);
    for (const b of buckets) for (const x of b.arms || []) if (!armOrder.includes(x.arm_id)) armOrder.push(x.arm_id);
    const armName = (id) => {
      const arm = a && a.arms ? a.arms.find((x) => x.arm_id === id) : null;
      return arm ? armLabel(arm, names) : names.get(id) || String(id).slice(0, 8);
    };
    // Charts show at most MAX_CHART_ARMS arms: the current favourites.
    const shown = a && a.arms && a.arms.length > MAX_CHART_ARMS ? chartArms(a.arms).map((x) => x.arm_id) : armOrder.slice(0, MAX_CHART_ARMS);
    const colorOf = (id) => color(armOrder.indexOf(id));
    const dur = BUCKET_MS[bucket];
    const starts = buckets.map((b) => Date.parse(b.start));
    const pb = cumulativeProbBest(buckets, armOrder);
    const probSeries = shown.map((id) => ({
      name: armName(id), color: colorOf(id),
      // Start from the prior (every arm equally likely to be best), so even a single
      // bucket draws a line rather than a lone dot at the right edge.
      points: [[starts[0], 1 / armOrder.length], ...buckets.map((b, k) => [starts[k] + dur, pb[k][armOrder.indexOf(id)]])],
    }));
    const segments = buckets.map((b, k) => {
      const byId = new Map((b.arms || []).map((x) => [x.arm_id, x.allocations || 0]));
      const total = armOrder.reduce((sum, id) => sum + (byId.get(id) || 0), 0);
      return { x0: starts[k], x1: starts[k] + dur, shares: armOrder.map((id) => (total ? (byId.get(id) || 0) / total : 0)), empty: total === 0 };
    }).filter((seg) => !seg.empty);
    const xFmt = (v) => f.shortTime(new Date(v), bucket);
    const probBox = h('div', { class: 'chart-box' });
    const shareBox = h('div', { class: 'chart-box' });
    mount(body,
      h('figure', { class: 'chart-figure' },
        h('figcaption', null, h('h3', null, 'Probability of being best, over time'),
          h('p', { class: 'hint' }, 'Cumulative: each point uses all data up to the end of that ' + bucket + '.')),
        probBox, legend(probSeries)),
      h('figure', { class: 'chart-figure' },
        h('figcaption', null, h('h3', null, 'Traffic share, over time'),
          h('p', { class: 'hint' }, `How each ${bucket}’s new visitors were split between the arms.`)),
        shareBox, legend(armOrder.map((id) => ({ name: armName(id), color: colorOf(id) })))));
    const xDomain = [starts[0], starts[starts.length - 1] + dur];
    mountChart(probBox, (width) => lineChart({
      width, height: 220, series: probSeries, xDomain, yDomain: [0, 1], xIsTime: true,
      xFormat: xFmt, yFormat: (v) => `${Math.round(v * 100)}%`,
      title: 'Probability of being best over time', desc: `${buckets.length} ${bucket} buckets`, testid: 'chart-prob-best',
    }), signal);
    mountChart(shareBox, (width) => stackedShareChart({
      width, height: 200, names: armOrder.map(armName), segments, xIsTime: true, xFormat: xFmt,
      title: 'Traffic share over time', desc: `${segments.length} ${bucket} buckets with traffic`, testid: 'chart-traffic',
    }), signal);
  }

  const section = h('section', { class: 'panel', 'data-testid': 'timeseries' },
    h('div', { class: 'section-head' }, h('h2', null, 'Over time'),
      h('div', { class: 'segmented', role: 'group', 'aria-label': 'Bucket size' }, buttons)),
    body);
  queueMicrotask(load);
  return section;
}

function combinationsSection(a, exp, signal) {
  const elements = exp.elements || [];
  const names = variantNames(exp);
  const arms = a.arms || [];
  const box = h('div', { class: 'chart-box' });
  let draw;
  let caption;
  if (elements.length === 2) {
    const [e1, e2] = elements;
    const rows = (e1.variants || []).map((v) => v.name);
    const cols = (e2.variants || []).map((v) => v.name);
    const cells = (e1.variants || []).map((v1) => (e2.variants || []).map((v2) => {
      const arm = arms.find((x) => (x.variant_ids || []).includes(v1.id) && (x.variant_ids || []).includes(v2.id));
      return arm && arm.allocations > 0 ? arm.conversion_rate : null;
    }));
    caption = `Conversion rate of each combination: rows are ${e1.name} variants, columns are ${e2.name} variants.`;
    draw = (width) => heatmap({ width, rows, cols, cells, format: (v) => f.pct(v, 1), rowTitle: e1.name, colTitle: e2.name, title: 'Conversion rate by combination', desc: caption, testid: 'chart-heatmap' });
  } else {
    const sorted = [...arms].sort((x, y) => (y.conversion_rate || 0) - (x.conversion_rate || 0));
    const top = sorted.slice(0, 25);
    caption = `Conversion rate of each combination, best first${sorted.length > top.length ? ` (top ${top.length} of ${sorted.length})` : ''}.`;
    const bestId = arms.reduce((m, x) => (x.prob_best > (m ? m.prob_best : -1) ? x : m), null);
    draw = (width) => barList({ width, items: top.map((arm) => ({ label: armLabel(arm, names), value: arm.conversion_rate, highlight: bestId && arm.arm_id === bestId.arm_id })), format: (v) => f.pct(v, 2), title: 'Conversion rate by combination', desc: caption, testid: 'chart-combinations' });
  }
  queueMicrotask(() => mountChart(box, draw, signal));

  const effects = (a.elements || []).map((eff, i) => {
    const el = elements.find((e) => e.id === eff.element_id) || elements[i] || {};
    return h('div', { class: 'effect', 'data-testid': 'main-effect' },
      h('h4', null, el.name || `Element ${i + 1}`, el.selector ? h('code', { class: 'muted' }, ` ${el.selector}`) : null),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Variant'), h('th', { scope: 'col', class: 'num' }, 'Marginal rate'), h('th', { scope: 'col', class: 'num' }, 'P(best)'))),
        h('tbody', null, (eff.variants || []).map((v) => h('tr', null,
          h('th', { scope: 'row' }, names.get(v.variant_id) || String(v.variant_id).slice(0, 8)),
          h('td', { class: 'num' }, f.pct(v.marginal_rate, 2)),
          h('td', { class: 'num' }, probBar(v.prob_best))))))));
  });

  return h('section', { class: 'panel', 'data-testid': 'combinations' },
    h('h2', null, 'Combinations'),
    h('figure', { class: 'chart-figure' }, h('figcaption', null, h('p', { class: 'hint' }, caption)), box),
    effects.length ? h('div', { class: 'main-effects-block' }, h('h2', null, 'Main effects'),
      h('p', { class: 'hint' }, 'Each element on its own: the conversion rate of a variant averaged over the other elements’ variants.'),
      h('div', { class: 'effects', 'data-testid': 'main-effects' }, effects)) : null);
}

const EXPORTS = [
  { key: 'assignments-csv', label: 'Assignments (CSV)', query: { format: 'csv' }, ext: 'csv' },
  { key: 'assignments-xlsx', label: 'Assignments (Excel)', query: { format: 'xlsx' }, ext: 'xlsx' },
  { key: 'summary-csv', label: 'Summary (CSV)', query: { format: 'csv', part: 'summary' }, ext: 'csv', summary: true },
];

/**
 * "Download": the experiment's data as files (GET /experiments/{id}/export). The buttons
 * fetch with the session's token; while one runs it shows busy and the others wait
 * (aria-disabled rather than disabled, so keyboard focus stays on the button).
 */
export function downloadControl(exp, signal) {
  const labelId = uid('download');
  const status = h('span', { class: 'visually-hidden', role: 'status', 'data-testid': 'download-status' });
  const buttons = EXPORTS.map((x) => h('button', { type: 'button', class: 'btn btn-small', 'data-testid': `download-${x.key}` }, x.label));
  let busy = false;
  async function run(x, btn) {
    if (busy) return;
    busy = true;
    buttons.forEach((b) => b.setAttribute('aria-disabled', 'true'));
    btn.setAttribute('aria-busy', 'true');
    const spinner = h('span', { class: 'spinner spinner-small', 'aria-hidden': 'true' });
    btn.prepend(spinner);
    status.textContent = `Preparing ${x.label}…`;
    try {
      const fallback = `experiment-${exp.id}${x.summary ? '-summary' : ''}.${x.ext}`;
      const file = await download(`/experiments/${encodeURIComponent(exp.id)}/export`, x.query, fallback, { signal });
      status.textContent = `Downloaded ${file.name}.`;
    } catch (err) {
      status.textContent = '';
      // Leaving the page cancels the download; that is not an error to show.
      if (signal && signal.aborted) return;
      showError(err, `Could not download ${x.label}`);
    } finally {
      busy = false;
      spinner.remove();
      btn.removeAttribute('aria-busy');
      buttons.forEach((b) => b.removeAttribute('aria-disabled'));
    }
  }
  buttons.forEach((btn, i) => btn.addEventListener('click', () => run(EXPORTS[i], btn)));
  return h('div', { class: 'download', role: 'group', 'aria-labelledby': labelId, 'data-testid': 'download' },
    h('span', { class: 'download-label', id: labelId }, 'Download'), buttons, status);
}

/**
 * Load and render the analytics for `exp` into `root`. Returns the analytics (or
 * null) so the page can offer the arms as winner choices.
 */
export async function renderResults(root, exp, signal) {
  mount(root, loading('Loading results…'));
  let a;
  try {
    a = await api.get(`/analytics/experiments/${encodeURIComponent(exp.id)}`, { signal });
  } catch (err) {
    if (signal.aborted) return null;
    mount(root, h('section', { class: 'panel' }, h('h2', null, 'Results'), errorPanel(err, () => renderResults(root, exp, signal))));
    return null;
  }
  const names = variantNames(exp);
  const noData = !(a.visitors > 0);
  const rate = a.visitors > 0 ? a.conversions / a.visitors : null;
  mount(root,
    srmWarning(a),
    h('section', { class: 'panel', 'data-testid': 'results' },
      h('div', { class: 'section-head' }, h('h2', null, 'Results'),
        // A draft has no data to export yet.
        exp.status === 'draft' ? null : downloadControl(exp, signal)),
      h('dl', { class: 'stats' },
        h('div', null, h('dt', null, 'Visitors'), h('dd', { 'data-testid': 'total-visitors' }, f.int(a.visitors))),
        h('div', null, h('dt', null, 'Conversions'), h('dd', { 'data-testid': 'total-conversions' }, f.int(a.conversions))),
        h('div', null, h('dt', null, 'Conversion rate'), h('dd', null, f.pct(rate, 2)))),
      // A draft has nothing to recommend yet ("Keep running" would be wrong: it never ran).
      exp.status === 'draft' ? null : recommendation(a, names),
      noData ? h('p', { class: 'hint' }, exp.status === 'draft'
        ? 'No visitors yet. Start the experiment and make sure the snippet is on your pages.'
        : 'No visitors yet. Check that the snippet is installed on the pages matching the target URL.') : null,
      resultsTable(a, exp),
      posteriorChart(a, exp, signal)),
    exp.type === 'multi_element' ? combinationsSection(a, exp, signal) : null,
    timeseriesSection(exp, a, signal));
  return a;
}
