// A campaign's waves: how many were sent, and how each split its recipients between the
// variants (the adaptive weights at the time), newest last, and a form to send the next one
// (its answer downloads as the CSV a mail tool sends, as `samplit campaign wave` prints it).
import { h, mount, field, loading, errorPanel, emptyState } from '../dom.js';
import { api } from '../api.js';
import { toast } from '../ui.js';
import { clearErrors, showApiError, formErrors } from '../forms.js';
import * as f from '../format.js';

/** One id or link per line; a CSV line counts by its first column, a header line is skipped. */
export function lines(text, { header = false } = {}) {
  const out = text.split(/\r?\n/).map((l) => l.split(',')[0].trim()).filter(Boolean);
  if (header && out.length && /^(user_id|id|email|recipient)$/i.test(out[0])) out.shift();
  return out;
}

/** A CSV cell: quoted when needed, and a leading = + - @ defused for spreadsheets. */
function cell(v) {
  let t = v == null ? '' : String(v);
  if (/^[=+\-@]/.test(t)) t = `'${t}`;
  return /[",\r\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
}

/** The wave's answer as the CLI's CSV: user_id, variant, subject, body, open_url, links. */
export function waveCsv(answer) {
  const recipients = answer.recipients || [];
  const n = recipients.reduce((m, r) => Math.max(m, (r.links || []).length), 0);
  const head = ['user_id', 'variant_name', 'subject', 'body', 'open_url'];
  for (let i = 1; i <= n; i++) head.push(`link_${i}`);
  const rows = recipients.map((r) => {
    const c = r.content || {};
    const links = r.links || [];
    return [r.user_id, r.variant_name, c.text, c.html, r.open_url, ...Array.from({ length: n }, (_, i) => links[i])];
  });
  return [head, ...rows].map((row) => row.map(cell).join(',')).join('\r\n') + '\r\n';
}

function saveCsv(text, name) {
  const href = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const a = h('a', { href, download: name, hidden: true });
  document.body.append(a);
  try {
    a.click();
  } finally {
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 30000);
  }
}

function sendForm(exp, onSent) {
  const recipients = h('textarea', { rows: 5, spellcheck: 'false', class: 'mono', placeholder: 'ada@example.com\ngrace@example.com', 'data-testid': 'wave-recipients' });
  const links = h('textarea', { rows: 2, spellcheck: 'false', class: 'mono', placeholder: 'https://shop.example/sale', 'data-testid': 'wave-links' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'send-wave' }, 'Send wave');
  const result = h('div', { 'aria-live': 'polite', 'data-testid': 'wave-result' });
  const form = h('form', { class: 'form', novalidate: true, 'data-testid': 'wave-form' },
    h('h3', null, 'Send the next wave'),
    formErrors(),
    field('Recipients', recipients, { field: 'recipients', hint: 'One id or address per line (or a CSV whose first column is the id), up to 10,000.' }),
    field('Links', links, { field: 'links', hint: 'Optional: the links in your message, one per line; each recipient gets their own tracked copy.' }),
    h('div', { class: 'form-actions' }, submit),
    result);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    mount(result);
    const body = { recipients: lines(recipients.value, { header: true }) };
    const l = lines(links.value);
    if (l.length) body.links = l;
    submit.disabled = true;
    try {
      const answer = await api.post(`/experiments/${encodeURIComponent(exp.id)}/waves`, body);
      const csv = waveCsv(answer);
      const name = `wave-${answer.wave}.csv`;
      const save = h('button', { type: 'button', class: 'btn', 'data-testid': 'wave-download' }, `Download ${name}`);
      save.addEventListener('click', () => saveCsv(csv, name));
      mount(result, h('p', { 'data-testid': 'wave-sent' },
        `Wave #${answer.wave}: ${f.int((answer.recipients || []).length)} recipients assigned. `), save,
        h('p', { class: 'hint' }, 'Send each recipient their variant with their own open pixel and links, from the CSV.'));
      recipients.value = '';
      onSent();
    } catch (err) {
      showApiError(form, err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function howToSend(exp) {
  return h('div', { class: 'wave-howto' },
    h('p', null, 'Or send a wave from your server with ', h('code', null, `POST /api/v1/experiments/${exp.id}/waves`),
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
  const form = exp.status === 'running' ? sendForm(exp, () => renderList(root, exp, signal, form)) : null;
  show(root, exp, items, total, form);
}

async function renderList(root, exp, signal, form) {
  let list;
  try {
    list = await api.get(`/experiments/${encodeURIComponent(exp.id)}/waves`, { signal });
  } catch (err) {
    if (!signal.aborted) toast('Could not reload the waves', 'error');
    return;
  }
  const items = list.items || [];
  show(root, exp, items, items.reduce((n, w) => n + (w.recipients || 0), 0), form);
}

function show(root, exp, items, total, form) {
  mount(root,
    h('h2', null, 'Waves'),
    items.length
      ? [h('p', { 'data-testid': 'waves-summary' }, `${f.int(items.length)} wave${items.length === 1 ? '' : 's'} sent, ${f.int(total)} messages in all.`),
        wavesTable(exp, items)]
      : emptyState(exp.status === 'running' ? 'No waves sent yet.' : 'No waves sent yet; start the campaign to send one.'),
    form,
    howToSend(exp));
}
