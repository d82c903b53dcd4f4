// Overview (the home page): experiments by status, traffic over UTC days, the current
// leaders, and the conversions adaptive allocation won over an equal split.
import { h, mount, loading, errorPanel, emptyState } from '../dom.js';
import { api } from '../api.js';
import { statusBadge } from '../ui.js';
import { mountChart, lineChart, barList, legend, color } from '../charts.js';
import * as f from '../format.js';

const STATUS_CARDS = ['running', 'paused', 'draft', 'completed'];

export async function render({ root, signal, app }) {
  const body = h('div', { 'data-testid': 'overview-body' }, loading('Loading the overview…'));
  mount(root, h('div', { class: 'page' },
    h('div', { class: 'page-head' },
      h('h1', null, 'Overview'),
      h('a', { href: '#/experiments/new', class: 'btn btn-primary', 'data-testid': 'overview-create' }, '+ New experiment')),
    body));

  let o;
  try {
    o = await api.get('/overview', { signal });
  } catch (err) {
    if (signal.aborted) return;
    mount(body, errorPanel(err, () => app.navigate(location.hash)));
    return;
  }
  const ex = o.experiments || {};
  const total = STATUS_CARDS.reduce((n, st) => n + (ex[st] || 0), 0);
  if (!total) {
    mount(body, emptyState('No experiments yet — create one, paste the snippet, and this page fills in.',
      h('a', { href: '#/experiments/new', class: 'btn btn-primary', 'data-testid': 'overview-empty-create' }, 'Create your first experiment')));
    return;
  }
  mount(body,
    statusCards(ex),
    trafficPanel(o, signal),
    leadersPanel(o.leaders || []),
    gainPanel(o, signal),
    h('p', { class: 'hint', 'data-testid': 'overview-generated' }, `Figures as of ${f.dateTime(o.generated_at)}. Days are UTC calendar days; archived experiments are left out.`));
}

function statusCards(ex) {
  return h('section', { class: 'cards cards-4', 'aria-label': 'Experiments by status', 'data-testid': 'overview-status' },
    STATUS_CARDS.map((st) => h('a', { class: 'card card-link', href: `#/experiments?status=${st}`, 'data-testid': `overview-status-${st}` },
      h('div', { class: 'card-title' }, st),
      h('div', { class: 'card-value', 'data-testid': 'count' }, f.int(ex[st] || 0)),
      h('div', { class: 'card-sub' }, (ex[st] || 0) === 1 ? 'experiment' : 'experiments'))));
}

function trafficPanel(o, signal) {
  const v = o.visitors || {};
  const c = o.conversions || {};
  const rate = (conv, vis) => (vis ? f.pct(conv / vis, 2) : '—');
  const row = (label, key) => h('tr', null,
    h('th', { scope: 'row' }, label),
    h('td', { class: 'num' }, f.int(v[key])),
    h('td', { class: 'num' }, f.int(c[key])),
    h('td', { class: 'num' }, rate(c[key], v[key])));
  const days = o.days || [];
  const box = h('div', { class: 'chart-box' });
  const series = [
    { name: 'Visitors', color: color(0), points: days.map((d) => [Date.parse(d.date), d.visitors]) },
    { name: 'Conversions', color: color(1), points: days.map((d) => [Date.parse(d.date), d.conversions]) },
  ];
  const panel = h('section', { class: 'panel', 'data-testid': 'overview-traffic' },
    h('h2', null, 'Traffic'),
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Visitors and conversions' },
      h('table', { class: 'table compact traffic-table', 'data-testid': 'overview-traffic-table' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Period'),
          ['Visitors', 'Conversions', 'Rate'].map((t) => h('th', { scope: 'col', class: 'num' }, t)))),
        h('tbody', null, row('Today', 'today'), row('7 days', 'last_7_days'), row('30 days', 'last_30_days')))),
    h('figure', { class: 'chart-figure' },
      h('figcaption', null, h('h3', null, 'The last 30 days'),
        h('p', { class: 'hint' }, 'New visitors by the day they were assigned, and conversions by the day they happened.')),
      box, legend(series)));
  if (days.length) {
    const first = Date.parse(days[0].date);
    const last = Date.parse(days[days.length - 1].date);
    const yMax = Math.max(1, ...days.map((d) => d.visitors)) * 1.1;
    queueMicrotask(() => mountChart(box, (width) => lineChart({
      width, height: 220, series, xDomain: [first, last], yDomain: [0, yMax], xIsTime: true,
      xFormat: (t) => f.shortTime(new Date(t), 'day'), yFormat: (n) => f.int(n), markers: true,
      title: 'Visitors and conversions per day', desc: `The last ${days.length} UTC days`, testid: 'chart-overview-days',
    }), signal));
  }
  return panel;
}

function leadersPanel(leaders) {
  const content = leaders.length
    ? h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Current leaders' },
      h('table', { class: 'table', 'data-testid': 'overview-leaders' },
        h('thead', null, h('tr', null,
          h('th', { scope: 'col' }, 'Experiment'),
          h('th', { scope: 'col' }, 'Status'),
          h('th', { scope: 'col' }, 'Leading arm'),
          ['P(best)', 'Its rate', 'Visitors'].map((t) => h('th', { scope: 'col', class: 'num' }, t)))),
        h('tbody', null, leaders.map((l) => h('tr', { 'data-testid': 'leader-row', 'data-id': l.experiment_id },
          h('th', { scope: 'row', class: 'name-col' }, h('a', { href: `#/experiments/${encodeURIComponent(l.experiment_id)}`, class: 'row-link' }, l.name || '(unnamed)')),
          h('td', null, statusBadge(l.status)),
          h('td', null, l.arm_name),
          h('td', { class: 'num' }, f.pct(l.prob_best)),
          h('td', { class: 'num' }, f.pct(l.conversion_rate, 2)),
          h('td', { class: 'num' }, f.int(l.visitors)))))))
    : h('p', { class: 'muted' }, 'No running or paused experiment has visitors yet.');
  return h('section', { class: 'panel' },
    h('h2', null, 'Current leaders'),
    h('p', { class: 'hint' }, 'In each running or paused experiment, the arm most likely to be best (exact probability from the Beta posteriors).'),
    content);
}

function gainPanel(o, signal) {
  const gains = o.adaptive || [];
  const extra = Number(o.extra_conversions) || 0;
  const panel = h('section', { class: 'panel', 'data-testid': 'overview-gain' },
    h('h2', null, 'What adaptive allocation won'),
    h('p', { class: 'card-value', 'data-testid': 'extra-conversions' }, `${f.signedInt(extra)} conversions`),
    h('p', { class: 'hint', 'data-testid': 'gain-method' },
      'An estimate over your adaptive experiments: the conversions observed minus those an equal split of the same visitors would have made, estimated from the propensity each visitor was assigned with (for K arms, Σ over arms of Σ 1/propensity over that arm’s conversions, divided by K).'));
  if (!gains.length) {
    panel.append(h('p', { class: 'muted' }, 'No adaptive experiment has visitors yet.'));
    return panel;
  }
  panel.append(h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Adaptive gain per experiment' },
    h('table', { class: 'table compact', 'data-testid': 'overview-gain-table' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Experiment'),
        ['Observed', 'Equal split (est.)', 'Extra'].map((t) => h('th', { scope: 'col', class: 'num' }, t)))),
      h('tbody', null, gains.map((g) => h('tr', { 'data-testid': 'gain-row' },
        h('th', { scope: 'row' }, h('a', { href: `#/experiments/${encodeURIComponent(g.experiment_id)}` }, g.name || '(unnamed)')),
        h('td', { class: 'num' }, f.int(g.conversions)),
        h('td', { class: 'num' }, f.num(g.equal_split_conversions, 1)),
        h('td', { class: ['num', g.extra_conversions > 0 ? 'pos' : g.extra_conversions < 0 ? 'neg' : null] }, f.signedInt(g.extra_conversions))))))));
  const box = h('div', { class: 'chart-box' });
  panel.append(h('figure', { class: 'chart-figure' },
    h('figcaption', null, h('h3', null, 'Observed against an equal split'),
      h('p', { class: 'hint' }, 'Orange: conversions observed; blue: the equal split’s estimate.')),
    box));
  const items = gains.slice(0, 10).flatMap((g) => [
    { label: `${g.name} · observed`, value: g.conversions, highlight: true },
    { label: `${g.name} · equal split`, value: Math.max(0, g.equal_split_conversions) },
  ]);
  queueMicrotask(() => mountChart(box, (width) => barList({
    width, items, format: (v) => f.num(v, 1), title: 'Observed conversions and the equal split estimate',
    desc: 'Per adaptive experiment', testid: 'chart-overview-gain',
  }), signal));
  return panel;
}
