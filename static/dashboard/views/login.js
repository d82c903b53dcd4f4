// First run (create the admin account), login, and open registration.
import { h, mount, field, loading } from '../dom.js';
import { api, setToken } from '../api.js';
import { clearErrors, showApiError, showFieldError, formErrors } from '../forms.js';

async function logIn(email, password) {
  const tok = await api.post('/auth/token', { email, password }, { auth: false });
  setToken(tok.access_token, tok.expires_in);
}

export async function render({ root, signal, app }) {
  const page = h('div', { class: 'page page-narrow' });
  mount(root, page);
  mount(page, loading('Checking the server…'));

  let status = { has_users: true, open_registration: false };
  let statusError = null;
  try {
    status = await api.get('/auth/status', { signal, auth: false });
  } catch (err) {
    if (signal.aborted) return;
    // Older servers lack /auth/status: still offer the login form, and say why in
    // the banner below (shown once, not also as a toast).
    statusError = err;
  }

  const show = (mode) => mount(page,
    statusError ? h('div', { class: 'banner banner-warning', role: 'status', 'data-testid': 'status-error' },
      `Could not ask the server whether an account exists yet (${statusError.message}). If this is a fresh install, try “Create account”.`) : null,
    mode === 'login' ? loginForm(status, statusError, show, app) : registerForm(mode, show, app),
    h('p', { class: 'muted center' }, 'Curious how adaptive allocation pays off? ',
      h('a', { href: '#/simulator', 'data-testid': 'simulator-link' }, 'Try the simulator'), ' — no account needed.'));

  show(status.has_users ? 'login' : 'setup');
}

function loginForm(status, statusError, show, app) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, 'data-testid': 'login-email' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', 'data-testid': 'login-submit' }, 'Log in');
  const form = h('form', { class: 'panel form', 'data-testid': 'login-form', novalidate: true },
    h('h1', null, 'Log in to Samplit'),
    formErrors(),
    field('Email', email, { field: 'email' }),
    field('Password', password, { field: 'password' }),
    submit,
    status.open_registration || statusError
      ? h('p', { class: 'muted center' }, 'No account? ', h('button', { type: 'button', class: 'linklike', 'data-testid': 'show-register', onclick: () => show('register') }, 'Create account'))
      : null);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    if (!email.value.trim()) { showFieldError(form, 'email', 'Enter your email.'); email.focus(); return; }
    if (!password.value) { showFieldError(form, 'password', 'Enter your password.'); password.focus(); return; }
    submit.disabled = true;
    submit.textContent = 'Logging in…';
    try {
      await logIn(email.value.trim(), password.value);
      await app.signedIn();
    } catch (err) {
      if (err.status === 401) {
        showFieldError(form, null, 'Wrong email or password.');
        password.select();
        password.focus();
      } else if (err.status === 429) {
        showFieldError(form, null, `Too many attempts — wait ${err.retryAfter || 60} seconds and try again.`);
      } else {
        showApiError(form, err);
      }
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log in';
    }
  });
  queueMicrotask(() => email.focus());
  return form;
}

/** mode 'setup': the first (admin) account; mode 'register': open registration. */
function registerForm(mode, show, app) {
  const first = mode === 'setup';
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'name', 'data-testid': 'register-name' });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, 'data-testid': 'register-email' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8, 'data-testid': 'register-password' });
  const confirm = h('input', { type: 'password', name: 'confirm', autocomplete: 'new-password', required: true, 'data-testid': 'register-confirm' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', 'data-testid': 'register-submit' }, first ? 'Create admin account' : 'Create account');
  const form = h('form', { class: 'panel form', 'data-testid': first ? 'setup-form' : 'register-form', novalidate: true },
    h('h1', null, first ? 'Welcome to Samplit' : 'Create an account'),
    first ? h('p', null, 'No account exists yet. Create the administrator account to get started.') : null,
    formErrors(),
    field('Name (optional)', name, { field: 'name' }),
    field('Email', email, { field: 'email' }),
    field('Password', password, { field: 'password', hint: 'At least 8 characters.' }),
    field('Repeat password', confirm, { field: 'confirm' }),
    submit,
    first ? null : h('p', { class: 'muted center' }, 'Have an account? ', h('button', { type: 'button', class: 'linklike', onclick: () => show('login') }, 'Log in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    if (!email.value.trim()) { showFieldError(form, 'email', 'Enter an email address.'); email.focus(); return; }
    if (password.value.length < 8) { showFieldError(form, 'password', 'The password needs at least 8 characters.'); password.focus(); return; }
    if (password.value !== confirm.value) { showFieldError(form, 'confirm', 'The passwords do not match.'); confirm.focus(); return; }
    submit.disabled = true;
    try {
      const body = { email: email.value.trim(), password: password.value };
      if (name.value.trim()) body.name = name.value.trim();
      await api.post('/auth/register', body, { auth: false });
      await logIn(body.email, body.password);
      await app.signedIn();
    } catch (err) {
      if (err.status === 403) showFieldError(form, null, `${err.message} — registration is closed; ask an administrator for an account.`);
      else showApiError(form, err);
    } finally {
      submit.disabled = false;
    }
  });
  queueMicrotask(() => (first ? name : email).focus());
  return form;
}
