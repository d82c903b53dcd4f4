// Audit trail: the caller's hash chain, newest first, and the server's verification of it
// (an admin may also verify every account's chain).
import { h, mount, loading, errorPanel, emptyState } from '../dom.js';
import { api } from '../api.js';
import { showError } from '../ui.js';
import * as f from '../format.js';

const PAGE = 50;

export async function render({ root, query, signal, app }) {
  const page = Math.max(0, Math.floor(Number(query.page) || 0));
  const verdict = h('div', { 'aria-live': 'polite', 'data-testid': 'audit-verify' }, loading('Verifying the chain…'));
  const list = h('div', { 'data-testid': 'audit-list' }, loading('Loading the audit trail…'));
  const admin = app.user && app.user.role === 'admin';
  const verifyAll = admin ? h('button', { type: 'button', class: 'btn', 'data-testid': 'audit-verify-all' }, 'Verify every account’s chain') : null;
  const again = h('button', { type: 'button', class: 'btn', 'data-testid': 'audit-verify-again' }, 'Verify again');
  mount(root, h('div', { class: 'page' },
    h('h1', null, 'Audit trail'),
    h('p', { class: 'lead' }, 'Every change to your experiments, users and keys, and every adaptive weight update, as a SHA-256 hash chain: each entry’s hash covers the previous hash and the entry itself, so an edited or removed entry breaks the chain from there on.'),
    h('section', { class: 'panel' }, h('div', { class: 'section-head' }, h('h2', null, 'Verification'), h('div', { class: 'actions' }, again, verifyAll)), verdict),
    h('section', { class: 'panel' }, h('h2', null, 'Entries, newest first'), list)));

  async function verify(scope) {
    mount(verdict, loading('Verifying the chain…'));
    let v;
    try {
      v = await api.get('/audit/verify', { query: { scope }, signal });
    } catch (err) {
      if (signal.aborted) return;
      mount(verdict, errorPanel(err, () => verify(scope)));
      return;
    }
    const whose = v.scope === 'all' ? 'Every account’s chain' : 'Your chain';
    if (v.verified) {
      mount(verdict, h('div', { class: 'banner banner-success', role: 'status', 'data-testid': 'audit-verified' },
        h('p', null, h('strong', null, `${whose} is verified: `), `${f.int(v.entries)} entries recomputed, every hash matches (${f.dateTime(v.checked_at)}).`)));
    } else {
      const b = v.first_broken || {};
      mount(verdict, h('div', { class: 'banner banner-warning', role: 'alert', 'data-testid': 'audit-not-verified' },
        h('p', null, h('strong', null, `${whose} is NOT verified. `), `The first broken entry is #${b.seq}: ${b.reason}.`),
        v.broken && v.broken.length > 1 ? h('p', null, `${v.broken.length} chains are broken.`) : null,
        h('p', null, 'Entries from there on cannot be trusted. Restore the data from a backup you trust, or keep this copy aside for investigation.')));
    }
  }
  again.addEventListener('click', () => verify('own').catch((err) => showError(err)));
  if (verifyAll) verifyAll.addEventListener('click', () => verify('all').catch((err) => showError(err)));

  async function load() {
    let total;
    let items;
    try {
      // Oldest first on the server: read the total, then the page that ends `page` pages
      // before the newest entry.
      const head = await api.get('/audit', { query: { limit: 1, offset: 0 }, signal });
      total = head.total || 0;
      const end = Math.max(0, total - page * PAGE);
      const offset = Math.max(0, end - PAGE);
      const data = end > 0 ? await api.get('/audit', { query: { limit: end - offset, offset }, signal }) : { items: [] };
      items = (data.items || []).slice().reverse();
    } catch (err) {
      if (signal.aborted) return;
      mount(list, errorPanel(err, load));
      return;
    }
    if (!items.length) {
      mount(list, emptyState(page ? 'No older entries.' : 'No entries yet.'));
      return;
    }
    const pages = Math.ceil(total / PAGE);
    const pager = pages > 1 ? h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('span', null, `Page ${page + 1} of ${pages}`),
      page > 0 ? h('a', { class: 'btn', href: page === 1 ? '#/audit' : `#/audit?page=${page - 1}` }, '← Newer') : null,
      page + 1 < pages ? h('a', { class: 'btn', href: `#/audit?page=${page + 1}` }, 'Older →') : null) : null;
    mount(list,
      h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Audit entries' },
        h('table', { class: 'table compact audit-table', 'data-testid': 'audit-table' },
          h('thead', null, h('tr', null, ['#', 'When', 'Who', 'What'].map((t) => h('th', { scope: 'col' }, t)),
            ['Details', 'Hash'].map((t) => h('th', { scope: 'col', class: 'col-secondary' }, t)))),
          h('tbody', null, items.map((e) => h('tr', { 'data-testid': 'audit-row', 'data-seq': e.seq },
            h('th', { scope: 'row', class: 'num' }, String(e.seq)),
            h('td', { class: 'nowrap' }, f.dateTime(e.at)),
            h('td', { class: 'audit-actor' }, e.actor || h('span', { class: 'muted' }, 'self')),
            h('td', null, h('code', null, e.action),
              e.experiment_id ? h('div', null, h('a', { href: `#/experiments/${encodeURIComponent(e.experiment_id)}`, class: 'hint' }, 'experiment')) : null),
            h('td', { class: 'audit-data col-secondary' }, details(e.data)),
            h('td', { class: 'col-secondary' }, h('code', { title: e.hash }, `${String(e.hash).slice(0, 10)}…`))))))),
      pager);
  }

  await Promise.all([verify('own'), load()]);
}

/** An entry's data in one short line; the whole JSON on hover. */
function details(data) {
  if (!data || typeof data !== 'object' || !Object.keys(data).length) return h('span', { class: 'muted' }, '—');
  const text = JSON.stringify(data);
  return h('code', { title: text }, text.length > 80 ? `${text.slice(0, 79)}…` : text);
}
