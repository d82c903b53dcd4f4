// A campaign's waves: how many were sent, and how each split its recipients between the
// variants (the adaptive weights at the time), newest last, plus how to send the next one.
import { h, mount, loading, errorPanel, emptyState } from '../dom.js';
import { api } from '../api.js';
import * as f from '../format.js';

function howToSend(exp) {
  return h('div', { class: 'wave-howto' },
    h('p', null, 'Send a wave from your server with ', h('code', null, `POST /api/v1/experiments/${exp.id}/waves`),
      ' and ', h('code', null, '{"recipients": [...], "links": ["https://…"]}'),
      ', or on the server’s machine with ', h('code', null, `samplit campaign wave --experiment ${exp.id} --recipients list.txt`),
      '. Each recipient gets a variant, an open pixel and their own click links.'));
}

function wavesTable(exp, items) {
  const variants = (exp.elements && exp.elements[0] && exp.elements[0].variants) || [];
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table compact', 'data-testid': 'waves-table', 'aria-label': 'Recipients per variant in each wave' },
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Wave'),
      h('th', { scope: 'col' }, 'Sent'),
      h('th', { scope: 'col', class: 'num' }, 'Recipients'),
      variants.map((v) => h('th', { scope: 'col', class: 'num' }, v.name)))),
    h('tbody', null, items.map((w) => {
      const counts = new Map((w.variants || []).map((x) => [x.variant_id, x.recipients]));
      return h('tr', { 'data-testid': 'wave-row' },
        h('th', { scope: 'row' }, `#${w.wave}`),
        h('td', null, f.dateTime(w.sent_at)),
        h('td', { class: 'num' }, f.int(w.recipients),
          w.recipients > w.new_recipients ? h('span', { class: 'hint' }, ` (${f.int(w.recipients - w.new_recipients)} again)`) : null),
        variants.map((v) => {
          const n = counts.get(v.id) || 0;
          return h('td', { class: 'num' }, f.int(n), h('span', { class: 'hint' }, ` ${f.pct(w.recipients ? n / w.recipients : NaN, 0)}`));
        }));
    }))));
}

/** Renders the waves panel into `root`. */
export async function renderWaves(root, exp, signal) {
  mount(root, loading('Loading the waves…'));
  let list;
  try {
    list = await api.get(`/experiments/${encodeURIComponent(exp.id)}/waves`, { signal });
  } catch (err) {
    if (signal.aborted) return;
    mount(root, errorPanel(err, () => renderWaves(root, exp, signal)));
    return;
  }
  const items = list.items || [];
  const total = items.reduce((n, w) => n + (w.recipients || 0), 0);
  mount(root,
    h('h2', null, 'Waves'),
    items.length
      ? [h('p', { 'data-testid': 'waves-summary' }, `${f.int(items.length)} wave${items.length === 1 ? '' : 's'} sent, ${f.int(total)} messages in all.`),
        wavesTable(exp, items)]
      : emptyState(exp.status === 'running' ? 'No waves sent yet.' : 'No waves sent yet; start the campaign to send one.'),
    howToSend(exp));
}
