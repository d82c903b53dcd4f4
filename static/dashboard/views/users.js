// Users (admins only): create, change role, disable or enable, set a password (which ends
// the user's sessions), remove. Members never see this page in the menu; the API answers
// them 403 anyway.
import { h, mount, field, loading, errorPanel, emptyState } from '../dom.js';
import { api, limits } from '../api.js';
import { toast, showError, confirmDialog, statusBadge } from '../ui.js';
import { clearErrors, showApiError, showFieldError, formErrors } from '../forms.js';
import * as f from '../format.js';


export async function render({ root, signal, app }) {
  // The server's rule (GET /meta/limits); it refuses shorter ones with a 422 anyway.
  const MIN_PASSWORD = limits.min_password || 1;
  if (!app.user || app.user.role !== 'admin') {
    mount(root, h('div', { class: 'page' }, h('h1', null, 'Users'),
      h('div', { class: 'panel', 'data-testid': 'users-forbidden' }, h('p', null, 'Only an admin can manage users. Ask an admin of this server for a change to your account.'))));
    return;
  }
  const list = h('div', { 'data-testid': 'users-list' });
  const email = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'off', 'data-testid': 'user-email' });
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'off', 'data-testid': 'user-name' });
  const password = h('input', { type: 'password', name: 'password', required: true, minlength: MIN_PASSWORD, autocomplete: 'new-password', 'data-testid': 'user-password' });
  const role = h('select', { name: 'role', 'data-testid': 'user-role' }, h('option', { value: 'member' }, 'Member'), h('option', { value: 'admin' }, 'Admin'));
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'create-user' }, 'Create user');
  const form = h('form', { class: 'panel form', novalidate: true, 'data-testid': 'user-form' },
    h('h2', null, 'New user'),
    h('p', { class: 'hint' }, 'Members manage their own experiments, keys and webhooks; admins also manage users.'),
    formErrors(),
    h('div', { class: 'grid-2' },
      field('Email', email, { field: 'email' }),
      field('Name', name, { field: 'name', hint: 'Optional.' }),
      field('Password', password, { field: 'password', hint: `At least ${MIN_PASSWORD} characters; they can change it later.` }),
      field('Role', role, { field: 'role' })),
    h('div', { class: 'form-actions' }, submit));

  mount(root, h('div', { class: 'page' }, h('h1', null, 'Users'), form, h('section', { class: 'panel' }, h('h2', null, 'Everyone on this server'), list)));

  async function load() {
    mount(list, loading('Loading users…'));
    let data;
    try {
      data = await api.get('/users', { signal });
    } catch (err) {
      if (signal.aborted) return;
      mount(list, errorPanel(err, load));
      return;
    }
    const items = (data && data.items) || [];
    if (!items.length) { mount(list, emptyState('No users.')); return; }
    mount(list, h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Users' },
      h('table', { class: 'table', 'data-testid': 'users-table' },
        h('thead', null, h('tr', null, ['Email', 'Name', 'Role', 'State', 'Created', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, items.map((u) => row(u))))));
  }

  function row(u) {
    const self = app.user && app.user.id === u.id;
    const roleSelect = h('select', { 'aria-label': `Role of ${u.email}`, 'data-testid': 'role-select' },
      h('option', { value: 'member', selected: u.role === 'member' }, 'Member'),
      h('option', { value: 'admin', selected: u.role === 'admin' }, 'Admin'));
    roleSelect.addEventListener('change', () => change(u, { role: roleSelect.value }, `${u.email} is now ${roleSelect.value === 'admin' ? 'an admin' : 'a member'}.`));
    return h('tr', { 'data-testid': 'user-row', 'data-id': u.id, 'data-email': u.email },
      h('th', { scope: 'row', class: 'user-email' }, u.email, self ? h('span', { class: 'tag' }, 'you') : null),
      h('td', null, u.name || h('span', { class: 'muted' }, '—')),
      h('td', null, roleSelect),
      h('td', null, u.disabled ? statusBadge('disabled') : h('span', { class: 'badge badge-running' }, 'active')),
      h('td', { class: 'nowrap' }, f.dateTime(u.created_at)),
      h('td', null, h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'reset-password', onclick: () => resetPassword(u, self) }, 'Set password'),
        h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'toggle-disabled', onclick: () => change(u, { disabled: !u.disabled }, `${u.email} is ${u.disabled ? 'enabled' : 'disabled'}.`) }, u.disabled ? 'Enable' : 'Disable'),
        h('button', { type: 'button', class: 'btn btn-danger-outline btn-small', 'data-testid': 'remove-user', onclick: () => remove(u) }, 'Remove'))));
  }

  async function change(u, body, done) {
    try {
      await api.patch(`/users/${encodeURIComponent(u.id)}`, body);
      toast(done, 'success');
    } catch (err) {
      showError(err, `Could not change ${u.email}`);
    }
    load();
  }

  async function resetPassword(u, self) {
    const input = h('input', { type: 'password', minlength: MIN_PASSWORD, autocomplete: 'new-password', 'data-testid': 'new-password' });
    const chosen = await confirmDialog({
      title: `Set a password for ${u.email}`,
      message: self ? 'Your own sessions end too: you will log in again with the new password.' : 'Their sessions end at once; they log in again with this password. Their API keys keep working.',
      confirmLabel: 'Set password',
      body: field('New password', input, { hint: `At least ${MIN_PASSWORD} characters.` }),
      collect: () => input.value,
    });
    if (chosen === null) return;
    if (chosen.length < MIN_PASSWORD) { toast(`The password needs at least ${MIN_PASSWORD} characters.`, 'error'); return; }
    try {
      await api.post(`/users/${encodeURIComponent(u.id)}/password`, { password: chosen });
      toast(`Password set for ${u.email}; their sessions have ended.`, 'success');
    } catch (err) {
      showError(err, 'Could not set the password');
      return;
    }
    if (self) app.signOut('Your password changed — log in again.');
    else load();
  }

  async function remove(u) {
    const ok = await confirmDialog({ title: `Remove ${u.email}?`, message: 'Their tokens, API keys and site snippet stop at once. Their experiments are kept but no longer reachable.', confirmLabel: 'Remove', danger: true });
    if (!ok) return;
    try {
      await api.del(`/users/${encodeURIComponent(u.id)}`);
      toast(`${u.email} removed.`, 'success');
    } catch (err) {
      showError(err, 'Could not remove the user');
    }
    load();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    if (!email.value.trim()) { showFieldError(form, 'email', 'Give the new user’s email.'); email.focus(); return; }
    if (password.value.length < MIN_PASSWORD) { showFieldError(form, 'password', `At least ${MIN_PASSWORD} characters.`); password.focus(); return; }
    submit.disabled = true;
    try {
      const body = { email: email.value.trim(), password: password.value, role: role.value };
      if (name.value.trim()) body.name = name.value.trim();
      const u = await api.post('/users', body);
      toast(`${u.email} created.`, 'success');
      form.reset();
      load();
    } catch (err) {
      showApiError(form, err);
    } finally {
      submit.disabled = false;
    }
  });

  await load();
}
