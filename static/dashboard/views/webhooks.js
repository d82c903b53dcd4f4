// Webhooks: subscribe a URL to events (the signing secret is shown once), list, send a
// signed test event, read a webhook's delivery log, remove.
import { h, mount, field, loading, errorPanel, emptyState } from '../dom.js';
import { api, limits } from '../api.js';
import { toast, showError, confirmDialog, copyButton, selectContents } from '../ui.js';
import { clearErrors, showApiError, showFieldError, formErrors } from '../forms.js';
import * as f from '../format.js';

// Labels for the events the server offers (GET /meta/limits `webhook_events`); an event
// without one shows its name.
const EVENT_LABELS = {
  'experiment.started': 'Started',
  'experiment.paused': 'Paused',
  'experiment.resumed': 'Resumed',
  'experiment.completed': 'Completed',
  'experiment.archived': 'Archived',
  'experiment.winner_found': 'Winner found',
  'experiment.srm_detected': 'Sample ratio mismatch',
};

export async function render({ root, signal }) {
  const list = h('div', { 'data-testid': 'webhooks-list' });
  const log = h('div', { 'aria-live': 'polite', 'data-testid': 'deliveries' });
  const reveal = h('div', { 'aria-live': 'polite' });
  const url = h('input', { type: 'url', name: 'url', required: true, placeholder: 'https://example.com/samplit-hook', 'data-testid': 'webhook-url' });
  const boxes = (limits.webhook_events || []).map((name) => {
    const text = EVENT_LABELS[name] || name;
    const input = h('input', { type: 'checkbox', name: 'events', value: name, checked: name === 'experiment.winner_found' || name === 'experiment.completed', 'data-testid': `event-${name}` });
    return h('label', { class: 'radio' }, input, h('span', null, text, ' ', h('code', null, name)));
  });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'create-webhook' }, 'Add webhook');
  const form = h('form', { class: 'panel form', novalidate: true, 'data-testid': 'webhook-form' },
    h('h2', null, 'New webhook'),
    h('p', { class: 'hint' }, 'Samplit POSTs JSON to this URL for each event chosen, signed with ', h('code', null, 'X-Samplit-Signature: sha256=<HMAC of the body>'), ', and retries failures with backoff.'),
    formErrors(),
    field('URL', url, { field: 'url' }),
    h('fieldset', { class: 'radio-group', 'data-field': 'events' }, h('legend', null, 'Events'), h('div', { class: 'event-grid' }, boxes)),
    h('div', { class: 'form-actions' }, submit));

  mount(root, h('div', { class: 'page' }, h('h1', null, 'Webhooks'), form, reveal,
    h('section', { class: 'panel' }, h('h2', null, 'Your webhooks'), list), log));

  let shown = null; // the webhook whose log is open
  let poll = null;
  signal.addEventListener('abort', () => clearTimeout(poll));

  async function load() {
    mount(list, loading('Loading webhooks…'));
    let data;
    try {
      data = await api.get('/webhooks', { signal });
    } catch (err) {
      if (signal.aborted) return;
      mount(list, errorPanel(err, load));
      return;
    }
    const items = (data && data.items) || [];
    if (!items.length) {
      mount(list, emptyState('No webhooks yet — add one above to hear about winners as they are found.'));
      mount(log);
      return;
    }
    mount(list, h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Webhooks' },
      h('table', { class: 'table', 'data-testid': 'webhooks-table' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'URL'),
          ['Events', 'Created'].map((t) => h('th', { scope: 'col', class: 'col-secondary' }, t)), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        h('tbody', null, items.map((w) => h('tr', { 'data-testid': 'webhook-row', 'data-id': w.id },
          h('th', { scope: 'row', class: 'webhook-url' }, w.url),
          h('td', { class: 'col-secondary' }, w.events.map((e) => h('code', { class: 'event-tag' }, e))),
          h('td', { class: 'nowrap col-secondary' }, f.dateTime(w.created_at)),
          h('td', null, h('div', { class: 'actions' },
            h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'test-webhook', onclick: () => sendTest(w) }, 'Send test'),
            h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'show-deliveries', onclick: () => showLog(w) }, 'Deliveries'),
            h('button', { type: 'button', class: 'btn btn-danger-outline btn-small', 'data-testid': 'delete-webhook', onclick: () => remove(w) }, 'Delete')))))))));
    if (shown && !items.some((w) => w.id === shown.id)) { shown = null; mount(log); }
  }

  async function showLog(w, { polls = 0 } = {}) {
    shown = w;
    clearTimeout(poll);
    if (!polls) mount(log, h('section', { class: 'panel' }, loading('Loading deliveries…')));
    let data;
    try {
      data = await api.get(`/webhooks/${encodeURIComponent(w.id)}/deliveries`, { signal });
    } catch (err) {
      if (signal.aborted) return;
      mount(log, h('section', { class: 'panel' }, errorPanel(err, () => showLog(w))));
      return;
    }
    if (shown !== w) return;
    const items = ((data && data.items) || []).slice().sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    const refresh = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'refresh-deliveries', onclick: () => showLog(w) }, 'Refresh');
    mount(log, h('section', { class: 'panel', 'data-testid': 'deliveries-panel' },
      h('div', { class: 'section-head' }, h('h2', null, 'Delivery log'), refresh),
      h('p', { class: 'hint webhook-url' }, w.url),
      items.length
        ? h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Deliveries' },
          h('table', { class: 'table compact', 'data-testid': 'deliveries-table' },
            h('thead', null, h('tr', null, ['Event', 'State', 'Attempts', 'Last answer', 'Queued', 'Next try'].map((t) => h('th', { scope: 'col' }, t)))),
            h('tbody', null, items.map((d) => {
              const last = d.attempts[d.attempts.length - 1];
              const answer = !last ? '—' : last.status_code ? `HTTP ${last.status_code}` : last.error || 'error';
              return h('tr', { 'data-testid': 'delivery-row', 'data-state': d.state, 'data-event': d.event },
                h('th', { scope: 'row' }, h('code', null, d.event)),
                h('td', null, h('span', { class: `badge badge-delivery-${d.state}` }, d.state)),
                h('td', { class: 'num' }, String(d.attempts.length)),
                h('td', { class: 'delivery-answer' }, answer),
                h('td', { class: 'nowrap' }, f.dateTime(d.created_at)),
                h('td', { class: 'nowrap' }, d.next_attempt_at ? f.dateTime(d.next_attempt_at) : '—'));
            }))))
        : emptyState('Nothing delivered yet. Send a test event to try the receiver.')));
    // A queued delivery usually settles within a second or two: look again a few times.
    if (items.some((d) => d.state === 'pending') && polls < 10) {
      poll = setTimeout(() => showLog(w, { polls: polls + 1 }).catch((err) => showError(err)), 1000);
    }
  }

  async function sendTest(w) {
    try {
      await api.post(`/webhooks/${encodeURIComponent(w.id)}/test`, {});
      toast('Test event queued: it is signed like every delivery.', 'success');
    } catch (err) {
      showError(err, 'Could not send a test event');
      return;
    }
    showLog(w);
  }

  async function remove(w) {
    const ok = await confirmDialog({ title: 'Delete this webhook?', message: `${w.url} will receive no more events. Deliveries still queued are dropped.`, confirmLabel: 'Delete', danger: true });
    if (!ok) return;
    try {
      await api.del(`/webhooks/${encodeURIComponent(w.id)}`);
      toast('Webhook deleted.', 'success');
    } catch (err) {
      showError(err, 'Could not delete the webhook');
    }
    load();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const events = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
    if (!url.value.trim()) { showFieldError(form, 'url', 'Give the URL that should receive the events.'); url.focus(); return; }
    if (!events.length) { showFieldError(form, 'events', 'Choose at least one event.'); return; }
    submit.disabled = true;
    try {
      const created = await api.post('/webhooks', { url: url.value.trim(), events });
      url.value = '';
      const code = h('code', { class: 'key', 'data-testid': 'webhook-secret' }, created.secret);
      mount(reveal, h('div', { class: 'banner banner-success', role: 'status', 'data-testid': 'webhook-reveal' },
        h('p', null, h('strong', null, 'Webhook added. '), 'Its signing secret is shown only once — store it where your receiver checks signatures.'),
        h('p', { class: 'key-line' }, code, ' ', copyButton(() => created.secret, { label: 'Copy secret', testid: 'copy-secret', selectOnFail: () => selectContents(code) })),
        h('button', { type: 'button', class: 'btn btn-ghost btn-small', onclick: () => mount(reveal) }, 'I have stored it — hide')));
      load();
    } catch (err) {
      showApiError(form, err, (path) => (path.startsWith('events') ? ['events'] : []));
    } finally {
      submit.disabled = false;
    }
  });

  await load();
}
