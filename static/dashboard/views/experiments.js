// Experiments list: status filter, paging, summary numbers and the current leader.
import { h, mount, field, loading, emptyState, errorPanel } from '../dom.js';
import { api } from '../api.js';
import { statusBadge } from '../ui.js';
import * as f from '../format.js';

const PAGE = 50;

export async function render({ root, query, signal, app }) {
  const status = f.STATUSES.includes(query.status) ? query.status : '';
  const offset = Math.max(0, Number(query.offset) || 0);

  const select = h('select', { name: 'status', 'data-testid': 'status-filter' },
    h('option', { value: '' }, 'All statuses'),
    f.STATUSES.map((st) => h('option', { value: st, selected: st === status }, st[0].toUpperCase() + st.slice(1))));
  select.addEventListener('change', () => app.navigate(select.value ? `#/experiments?status=${select.value}` : '#/experiments'));

  const body = h('div', { 'data-testid': 'experiments-body' }, loading('Loading experiments…'));
  mount(root, h('div', { class: 'page' },
    h('div', { class: 'page-head' },
      h('h1', null, 'Experiments'),
      h('a', { href: '#/experiments/new', class: 'btn btn-primary', 'data-testid': 'create-experiment' }, '+ New experiment')),
    h('div', { class: 'toolbar' }, field('Status', select, { class: 'field-inline' })),
    body));

  let data;
  try {
    data = await api.get('/experiments', { query: { status, limit: PAGE, offset }, signal });
  } catch (err) {
    if (signal.aborted) return;
    mount(body, errorPanel(err, () => app.navigate(location.hash)));
    return;
  }
  const items = (data && data.items) || [];
  const total = Number.isFinite(data && data.total) ? data.total : items.length;

  if (!items.length) {
    mount(body, status && total === 0
      ? emptyState(`No ${status} experiments.`, h('a', { href: '#/experiments' }, 'Show all experiments'))
      : offset > 0
        ? emptyState('No more experiments on this page.', h('a', { href: '#/experiments' }, 'Back to the first page'))
        : emptyState('No experiments yet — create one.', h('a', { href: '#/experiments/new', class: 'btn btn-primary', 'data-testid': 'empty-create' }, 'Create your first experiment')));
    return;
  }

  const rows = items.map((exp) => {
    const sum = exp.summary || {};
    const leader = sum.leader;
    const link = h('a', { href: `#/experiments/${encodeURIComponent(exp.id)}`, class: 'row-link' }, exp.name || '(unnamed)');
    return h('tr', { 'data-testid': 'experiment-row', 'data-id': exp.id },
      h('th', { scope: 'row', class: 'name-col' }, link),
      h('td', { class: 'col-secondary' }, f.label(f.TYPE_LABEL, exp.type)),
      h('td', { class: 'col-secondary' }, f.label(f.ALLOCATION_LABEL, exp.allocation)),
      h('td', null, statusBadge(exp.status)),
      h('td', { class: 'num' }, f.int(sum.visitors)),
      h('td', { class: 'num' }, f.int(sum.conversions)),
      h('td', null, leader ? leader.name : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'num' }, leader ? f.pct(leader.prob_best) : '—'));
  });

  const pager = total > PAGE ? h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('span', null, `${offset + 1}–${Math.min(offset + items.length, total)} of ${f.int(total)}`),
    offset > 0 ? h('a', { class: 'btn', href: pageHash(status, Math.max(0, offset - PAGE)) }, '← Previous') : null,
    offset + items.length < total ? h('a', { class: 'btn', href: pageHash(status, offset + PAGE) }, 'Next →') : null) : null;

  mount(body,
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Experiments table' },
      h('table', { class: 'table', 'data-testid': 'experiments-table' },
        h('thead', null, h('tr', null,
          h('th', { scope: 'col' }, 'Name'),
          ['Type', 'Allocation'].map((t) => h('th', { scope: 'col', class: 'col-secondary' }, t)),
          h('th', { scope: 'col' }, 'Status'),
          ['Visitors', 'Conversions'].map((t) => h('th', { scope: 'col', class: 'num' }, t)),
          h('th', { scope: 'col' }, 'Leader'),
          h('th', { scope: 'col', class: 'num' }, 'P(best)'))),
        h('tbody', null, rows))),
    pager);
}

function pageHash(status, offset) {
  const q = new URLSearchParams();
  if (status) q.set('status', status);
  if (offset) q.set('offset', String(offset));
  const qs = q.toString();
  return `#/experiments${qs ? `?${qs}` : ''}`;
}
