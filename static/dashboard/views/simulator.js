// Public simulator: adaptive (the production allocator) vs a fixed equal split on
// synthetic traffic with known true rates. Reachable without logging in.
import { h, mount, field, loading } from '../dom.js';
import { api, limits } from '../api.js';
import { clearErrors, showApiError, showFieldError, formErrors } from '../forms.js';
import { mountChart, stackedShareChart, lineChart, legend, color } from '../charts.js';
import * as f from '../format.js';

const MIN_ARMS = 2;
// The dashboard shows up to 10 arms (charts and inputs stay legible); the API allows more.
const MAX_ARMS = 10;
// The server's limits (GET /meta/limits), formatted as people write them.
const maxVisitors = () => limits.simulator.max_visitors;
const maxRepetitions = () => limits.simulator.max_repetitions;
const big = (n) => n.toLocaleString('en-US');

/** Per-interval traffic shares from a cumulative timeline (what the allocator did when). */
export function shareSegments(timeline, k) {
  const segments = [];
  let prevV = 0;
  let prev = new Array(k).fill(0);
  for (const point of timeline || []) {
    const alloc = point.allocations || [];
    const delta = prev.map((p, i) => Math.max(0, (alloc[i] || 0) - p));
    const total = delta.reduce((a, b) => a + b, 0);
    if (total > 0 && point.visitors > prevV) {
      segments.push({ x0: prevV, x1: point.visitors, shares: delta.map((d) => d / total) });
    }
    prevV = point.visitors;
    prev = alloc.map((x) => x || 0);
  }
  return segments;
}

export async function render({ root, signal }) {
  const arms = [{ name: 'Control', rate: '5' }, { name: 'B', rate: '6' }];
  const settings = { visitors: '10000', repetitions: '1', seed: '' };
  const results = h('div', { 'aria-live': 'polite', 'data-testid': 'sim-results' });
  const form = h('form', { class: 'form', novalidate: true, 'data-testid': 'sim-form' });
  const run = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'sim-run' }, 'Run simulation');
  let cooldownTimer = null;

  mount(root, h('div', { class: 'page' },
    h('h1', null, 'Simulator'),
    h('p', { class: 'lead' }, 'What would adaptive allocation have earned you? Give each variant a true conversion rate; the simulator sends synthetic visitors through Samplit’s adaptive allocator and through a fixed equal split, and compares the conversions.'),
    form, results));

  function armsEditor() {
    return h('fieldset', { class: 'panel sim-arms', 'data-field': 'arms' },
      h('legend', null, 'Variants'),
      arms.map((arm, i) => {
        const name = h('input', { type: 'text', value: arm.name, maxlength: 100, 'data-testid': 'sim-arm-name' });
        name.addEventListener('input', () => { arm.name = name.value; });
        const rate = h('input', { type: 'number', value: arm.rate, min: '0', max: '100', step: 'any', inputmode: 'decimal', class: 'narrow', 'data-testid': 'sim-arm-rate' });
        rate.addEventListener('input', () => { arm.rate = rate.value; });
        return h('div', { class: 'inline-row sim-arm', 'data-field': `arms[${i}]`, 'data-testid': 'sim-arm' },
          field(`Name of variant ${i + 1}`, name, { field: `arms[${i}].name`, class: 'grow' }),
          field('True rate (%)', rate, { field: `arms[${i}].true_rate` }),
          h('button', {
            type: 'button', class: 'btn btn-ghost btn-small', disabled: arms.length <= MIN_ARMS, 'aria-label': `Remove variant ${i + 1}`, 'data-testid': 'sim-remove-arm',
            onclick: () => { arms.splice(i, 1); draw(); form.querySelector('[data-testid="sim-add-arm"]').focus(); },
          }, 'Remove'));
      }),
      h('div', { class: 'row-actions' },
        h('button', {
          type: 'button', class: 'btn', disabled: arms.length >= MAX_ARMS, 'data-testid': 'sim-add-arm',
          onclick: () => {
            const last = Number(arms[arms.length - 1].rate) || 5;
            arms.push({ name: String.fromCharCode(65 + arms.length), rate: String(Number((last * 0.9).toFixed(2))) });
            draw();
            const names = form.querySelectorAll('[data-testid="sim-arm-name"]');
            names[names.length - 1].focus();
          },
        }, '+ Add variant'),
        h('span', { class: 'hint' }, `${arms.length} of ${MAX_ARMS}`)));
  }

  function settingInput(key, attrs) {
    const input = h('input', { type: 'number', value: settings[key], inputmode: 'numeric', class: 'narrow', ...attrs });
    input.addEventListener('input', () => { settings[key] = input.value; });
    return input;
  }

  function draw() {
    mount(form,
      formErrors(),
      armsEditor(),
      h('div', { class: 'panel' },
        h('div', { class: 'grid-3' },
          field('Visitors', settingInput('visitors', { min: '1', max: String(maxVisitors()), step: '1', 'data-testid': 'sim-visitors' }), { field: 'visitors', hint: `Up to ${big(maxVisitors())}.` }),
          field('Repetitions', settingInput('repetitions', { min: '1', max: String(maxRepetitions()), step: '1', 'data-testid': 'sim-repetitions' }), { field: 'repetitions', hint: `Averages out luck (1–${maxRepetitions()}).` }),
          field('Seed (optional)', settingInput('seed', { min: '0', step: '1', placeholder: 'random', 'data-testid': 'sim-seed' }), { field: 'seed', hint: 'Same seed, same result.' })),
        h('div', { class: 'form-actions' }, run)));
  }
  draw();

  function cooldown(seconds) {
    clearInterval(cooldownTimer);
    let left = Math.max(1, Math.ceil(seconds));
    run.disabled = true;
    const tick = () => {
      if (left <= 0 || signal.aborted) { clearInterval(cooldownTimer); run.disabled = false; run.textContent = 'Run simulation'; return; }
      run.textContent = `Try again in ${left} s`;
      left -= 1;
    };
    tick();
    cooldownTimer = setInterval(tick, 1000);
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const problems = [];
    const body = {
      arms: arms.map((a, i) => {
        const rate = Number(a.rate);
        if (!a.name.trim()) problems.push([`arms[${i}].name`, 'Name this variant.']);
        if (a.rate === '' || !Number.isFinite(rate) || rate < 0 || rate > 100) problems.push([`arms[${i}].true_rate`, 'A rate between 0 and 100%.']);
        return { name: a.name.trim(), true_rate: rate / 100 };
      }),
      visitors: Number(settings.visitors),
      strategies: ['adaptive', 'fixed'],
      repetitions: Number(settings.repetitions) || 1,
    };
    if (!Number.isInteger(body.visitors) || body.visitors < 1 || body.visitors > maxVisitors()) problems.push(['visitors', `A whole number from 1 to ${big(maxVisitors())}.`]);
    if (!Number.isInteger(body.repetitions) || body.repetitions < 1 || body.repetitions > maxRepetitions()) problems.push(['repetitions', `A whole number from 1 to ${maxRepetitions()}.`]);
    if (settings.seed !== '') {
      const seed = Number(settings.seed);
      if (!Number.isInteger(seed) || seed < 0) problems.push(['seed', 'A whole number ≥ 0, or empty.']);
      else body.seed = seed;
    }
    if (problems.length) {
      problems.forEach(([p, m]) => showFieldError(form, p, m));
      const first = form.querySelector('[aria-invalid="true"]');
      if (first) first.focus();
      return;
    }
    run.disabled = true;
    run.textContent = 'Simulating…';
    mount(results, loading('Simulating visitors…'));
    try {
      const data = await api.post('/simulate', body, { signal, auth: false });
      run.disabled = false;
      run.textContent = 'Run simulation';
      showResults(data, body);
    } catch (err) {
      if (signal.aborted) return;
      run.disabled = false;
      run.textContent = 'Run simulation';
      mount(results);
      if (err.status === 429) {
        showFieldError(form, null, `Too many simulations from your address — wait ${err.retryAfter || 60} seconds before the next one.`);
        cooldown(err.retryAfter || 60);
      } else {
        showApiError(form, err);
      }
    }
  });

  function showResults(data, body) {
    const list = (data && data.results) || [];
    const by = Object.fromEntries(list.map((r) => [r.strategy, r]));
    const ad = by.adaptive;
    const fx = by.fixed;
    const names = body.arms.map((a) => a.name);
    const gained = ad && fx ? ad.conversions - fx.conversions : null;
    const card = (title, value, sub, testid) => h('div', { class: 'card', 'data-testid': testid }, h('div', { class: 'card-title' }, title), h('div', { class: 'card-value' }, value), sub ? h('div', { class: 'card-sub' }, sub) : null);
    const regretText = (r) => (r ? `${f.num(r.regret, 1)}${Number.isFinite(r.regret_se) && body.repetitions > 1 ? ` ± ${f.num(r.regret_se, 1)}` : ''}` : '—');
    const perRep = body.repetitions > 1 ? ` (mean of ${body.repetitions} runs)` : '';

    const shareBox = h('div', { class: 'chart-box' });
    const regretBox = h('div', { class: 'chart-box' });
    mount(results,
      h('section', { class: 'panel' },
        h('h2', null, 'Result'),
        h('div', { class: 'cards' },
          card('Conversions gained by adaptive', gained === null ? '—' : f.signedInt(gained),
            gained !== null && fx && fx.conversions > 0 ? `${f.signedPct(gained / fx.conversions)} vs the fixed split${perRep}` : perRep, 'sim-gained'),
          card('Adaptive', `${f.int(ad && ad.conversions)} conversions`, `regret ${regretText(ad)}`, 'sim-adaptive'),
          card('Fixed split', `${f.int(fx && fx.conversions)} conversions`, `regret ${regretText(fx)}`, 'sim-fixed')),
        h('p', { class: 'hint' }, 'Regret counts the conversions lost to showing a worse variant: the sum over visitors of (best true rate − true rate of the variant shown). Lower is better.'),
        h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Visitors per variant' },
          h('table', { class: 'table compact sim-table', 'data-testid': 'sim-table' },
            h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Variant'), h('th', { scope: 'col', class: 'num' }, 'True rate'),
              list.map((r) => h('th', { scope: 'col', class: 'num' }, `${r.strategy} visitors`)))),
            h('tbody', null, names.map((n, i) => h('tr', null,
              h('th', { scope: 'row' }, n),
              h('td', { class: 'num' }, f.pct(body.arms[i].true_rate, 2)),
              list.map((r) => {
                const alloc = r.allocations || [];
                const total = alloc.reduce((a, b) => a + b, 0);
                return h('td', { class: 'num' }, f.int(alloc[i]), ' ', h('span', { class: 'muted sim-share' }, `(${f.pct(total ? alloc[i] / total : null)})`));
              }))))))),
      ad && ad.timeline && ad.timeline.length ? h('section', { class: 'panel' },
        h('figure', { class: 'chart-figure' },
          h('figcaption', null, h('h2', null, 'Adaptive traffic share over time'),
            h('p', { class: 'hint' }, 'How the allocator split each stretch of visitors: it shifts traffic to the better variants as evidence accumulates.')),
          shareBox, legend(names.map((n) => ({ name: n })))),
        h('figure', { class: 'chart-figure' },
          h('figcaption', null, h('h2', null, 'Regret over time'), h('p', { class: 'hint' }, 'Cumulative conversions lost to worse variants.')),
          regretBox, legend(list.map((r, i) => ({ name: r.strategy, color: color(i) }))))) : null);

    if (ad && ad.timeline && ad.timeline.length) {
      const segments = shareSegments(ad.timeline, names.length);
      mountChart(shareBox, (width) => stackedShareChart({
        width, height: 220, names, segments, xFormat: (v) => f.int(v),
        title: 'Adaptive traffic share over time', desc: `Share of visitors per variant over ${f.int(body.visitors)} visitors`, testid: 'sim-chart',
      }), signal);
      const regretSeries = list.filter((r) => r.timeline && r.timeline.length).map((r, i) => ({
        name: r.strategy, color: color(i), points: [[0, 0], ...r.timeline.map((p) => [p.visitors, p.regret])],
      }));
      const maxRegret = Math.max(1e-9, ...regretSeries.flatMap((x) => x.points.map((p) => p[1] || 0)));
      mountChart(regretBox, (width) => lineChart({
        width, height: 200, series: regretSeries, xDomain: [0, body.visitors], yDomain: [0, maxRegret * 1.05],
        xFormat: (v) => f.int(v), yFormat: (v) => f.num(v, 1), markers: false,
        title: 'Regret over time', desc: 'Cumulative regret of each strategy', testid: 'sim-regret-chart',
      }), signal);
    }
  }
}
