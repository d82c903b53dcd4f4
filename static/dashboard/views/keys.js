// API keys: create (the key is shown once), list, revoke.
import { h, mount, field, loading, errorPanel, emptyState } from '../dom.js';
import { api } from '../api.js';
import { toast, showError, confirmDialog, copyButton, selectContents } from '../ui.js';
import { clearErrors, showApiError, showFieldError, formErrors } from '../forms.js';
import * as f from '../format.js';

export async function render({ root, signal }) {
  const list = h('div', { 'data-testid': 'keys-list' });
  const reveal = h('div', { 'aria-live': 'polite' });
  const name = h('input', { type: 'text', name: 'name', maxlength: 100, required: true, placeholder: 'CI deploy', 'data-testid': 'key-name' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'create-key' }, 'Create key');
  const form = h('form', { class: 'panel form inline-form', novalidate: true, 'data-testid': 'key-form' },
    h('h2', null, 'New API key'),
    h('p', { class: 'hint' }, 'Use a key instead of a password for scripts and the CLI: send it as ', h('code', null, 'Authorization: Bearer <key>'), '.'),
    formErrors(),
    h('div', { class: 'inline-row' }, field('Name', name, { field: 'name', class: 'grow' }), submit));

  mount(root, h('div', { class: 'page' }, h('h1', null, 'API keys'), form, reveal, h('section', { class: 'panel' }, h('h2', null, 'Your keys'), list)));

  async function load() {
    mount(list, loading('Loading keys…'));
    let data;
    try {
      data = await api.get('/api-keys', { signal });
    } catch (err) {
      if (signal.aborted) return;
      mount(list, errorPanel(err, load));
      return;
    }
    const items = (data && data.items) || [];
    if (!items.length) {
      mount(list, emptyState('No API keys yet — create one above when a script needs access.'));
      return;
    }
    mount(list, h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'API keys' },
      h('table', { class: 'table', 'data-testid': 'keys-table' },
        h('thead', null, h('tr', null, ['Name', 'Key', 'Created', 'Last used', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, items.map((k) => h('tr', { 'data-testid': 'key-row', 'data-id': k.id },
          h('th', { scope: 'row' }, k.name),
          h('td', { class: 'nowrap' }, h('code', null, k.prefix ? `${k.prefix}…` : '—')),
          h('td', { class: 'nowrap' }, f.dateTime(k.created_at)),
          h('td', { class: 'nowrap' }, k.last_used_at ? f.dateTime(k.last_used_at) : h('span', { class: 'muted' }, 'never')),
          h('td', null, h('button', { type: 'button', class: 'btn btn-danger-outline btn-small', 'data-testid': 'revoke-key', onclick: () => revoke(k) }, 'Revoke'))))))));
  }

  async function revoke(k) {
    const ok = await confirmDialog({ title: `Revoke “${k.name}”?`, message: 'Scripts using this key will get 401 from now on. This cannot be undone.', confirmLabel: 'Revoke', danger: true });
    if (!ok) return;
    try {
      await api.del(`/api-keys/${encodeURIComponent(k.id)}`);
      toast(`Key “${k.name}” revoked.`, 'success');
    } catch (err) {
      showError(err, 'Could not revoke the key');
    }
    load();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    if (!name.value.trim()) { showFieldError(form, 'name', 'Name the key after what will use it.'); name.focus(); return; }
    submit.disabled = true;
    try {
      const created = await api.post('/api-keys', { name: name.value.trim() });
      name.value = '';
      const code = h('code', { class: 'key', 'data-testid': 'new-key' }, created.key);
      mount(reveal, h('div', { class: 'banner banner-success', role: 'status', 'data-testid': 'key-reveal' },
        h('p', null, h('strong', null, `Key “${created.name}” created. `), 'Copy it now — it is shown only once.'),
        h('p', { class: 'key-line' }, code, ' ', copyButton(() => created.key, { label: 'Copy key', testid: 'copy-key', selectOnFail: () => selectContents(code) })),
        h('button', { type: 'button', class: 'btn btn-ghost btn-small', onclick: () => mount(reveal) }, 'I have stored it — hide')));
      load();
    } catch (err) {
      showApiError(form, err);
    } finally {
      submit.disabled = false;
    }
  });

  await load();
}
