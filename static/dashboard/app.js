// Entry point: hash router (#/experiments/ID — the server needs no fallback routes),
// navigation bar, and the auth guard that sends signed-out users to the login page.
// The overview (#/overview) is the home page.
import { h, mount, errorPanel } from './dom.js';
import { api, getToken, clearToken, isAbort, loadLimits } from './api.js';
import { toast, showError, clearToasts } from './ui.js';
import * as loginView from './views/login.js';
import * as listView from './views/experiments.js';
import * as editorView from './views/editor.js';
import * as detailView from './views/experiment.js';
import * as installView from './views/install.js';
import * as keysView from './views/keys.js';
import * as simulatorView from './views/simulator.js';
import * as notificationsView from './views/notifications.js';
import * as overviewView from './views/overview.js';
import * as auditView from './views/audit.js';
import * as webhooksView from './views/webhooks.js';
import * as usersView from './views/users.js';

const RETURN_KEY = 'samplit.return_to';
const HOME = '#/overview';

const routes = [
  { path: /^\/login$/, view: loginView, public: true, title: 'Log in' },
  { path: /^\/simulator$/, view: simulatorView, public: true, title: 'Simulator' },
  { path: /^\/overview$/, view: overviewView, title: 'Overview', nav: 'overview' },
  { path: /^\/experiments$/, view: listView, title: 'Experiments', nav: 'experiments' },
  { path: /^\/experiments\/new$/, view: editorView, title: 'New experiment', nav: 'experiments' },
  { path: /^\/experiments\/([^/]+)\/edit$/, view: editorView, title: 'Edit experiment', nav: 'experiments', keys: ['id'] },
  { path: /^\/experiments\/([^/]+)$/, view: detailView, title: 'Experiment', nav: 'experiments', keys: ['id'] },
  { path: /^\/install$/, view: installView, title: 'Installation', nav: 'install' },
  { path: /^\/keys$/, view: keysView, title: 'API keys', nav: 'keys' },
  { path: /^\/notifications$/, view: notificationsView, title: 'Notifications', nav: 'notifications' },
  { path: /^\/webhooks$/, view: webhooksView, title: 'Webhooks', nav: 'webhooks' },
  { path: /^\/audit$/, view: auditView, title: 'Audit trail', nav: 'audit' },
  { path: /^\/users$/, view: usersView, title: 'Users', nav: 'users' },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const navToggle = document.getElementById('nav-toggle');

// Shared state across views.
const app = {
  user: null,
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  /** Called by the login view once a token is stored. */
  async signedIn() {
    clearToasts();
    await loadUser();
    const back = sessionStorage.getItem(RETURN_KEY);
    sessionStorage.removeItem(RETURN_KEY);
    app.navigate(back && !back.startsWith('#/login') ? back : HOME);
  },
  signOut(message) {
    clearToken();
    app.user = null;
    if (message) toast(message, 'info');
    app.navigate('#/login');
  },
};

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || HOME.slice(1);
  const [path, qs = ''] = raw.split('?');
  return { path: path || HOME.slice(1), query: Object.fromEntries(new URLSearchParams(qs)) };
}

function renderNav(active) {
  const link = (href, text, key) => h('a', { href, class: 'nav-link', 'aria-current': active === key ? 'page' : null, 'data-testid': `nav-${key}` }, text);
  const signedIn = Boolean(getToken());
  const items = signedIn
    ? [
      link(HOME, 'Overview', 'overview'),
      link('#/experiments', 'Experiments', 'experiments'),
      link('#/install', 'Installation', 'install'),
      link('#/keys', 'API keys', 'keys'),
      link('#/notifications', 'Notifications', 'notifications'),
      link('#/webhooks', 'Webhooks', 'webhooks'),
      link('#/audit', 'Audit', 'audit'),
      app.user && app.user.role === 'admin' ? link('#/users', 'Users', 'users') : null,
      link('#/simulator', 'Simulator', 'simulator'),
      h('span', { class: 'nav-spacer' }),
      app.user ? h('span', { class: 'nav-user', title: app.user.email }, app.user.email) : null,
      h('button', { type: 'button', class: 'btn btn-ghost nav-logout', 'data-testid': 'logout', onclick: () => app.signOut('You are logged out.') }, 'Log out'),
    ]
    : [
      link('#/simulator', 'Simulator', 'simulator'),
      h('span', { class: 'nav-spacer' }),
      link('#/login', 'Log in', 'login'),
    ];
  mount(nav, items);
}

async function loadUser() {
  if (!getToken()) return;
  try {
    app.user = await api.get('/auth/me');
  } catch (err) {
    app.user = null;
    if (err.status !== 401) showError(err, 'Could not load your account');
  }
}

let controller = null;
let firstRender = true;

async function route() {
  const { path, query } = parseHash();
  const match = routes.map((r) => ({ r, m: r.path.exec(path) })).find((x) => x.m);
  if (controller) controller.abort();
  controller = new AbortController();
  const { signal } = controller;

  // Close the phone menu after choosing a page.
  nav.classList.remove('open');
  navToggle.setAttribute('aria-expanded', 'false');

  if (!match) {
    renderNav(null);
    mount(main, h('div', { class: 'page' }, h('h1', null, 'Page not found'),
      h('p', null, 'There is nothing at this address. ', h('a', { href: HOME }, 'Go to the overview'), '.')));
    return;
  }
  const { r, m } = match;
  if (!r.public && !getToken()) {
    sessionStorage.setItem(RETURN_KEY, location.hash);
    app.navigate('#/login');
    return;
  }
  if (r.path.source.includes('login') && getToken()) {
    app.navigate(HOME);
    return;
  }
  const params = {};
  (r.keys || []).forEach((k, i) => { params[k] = decodeURIComponent(m[i + 1]); });
  document.title = `${r.title} · Samplit`;
  renderNav(r.nav || path.slice(1));
  mount(main);
  if (!firstRender) main.focus({ preventScroll: true });
  firstRender = false;
  window.scrollTo(0, 0);
  try {
    await r.view.render({ root: main, params, query, signal, app });
  } catch (err) {
    if (isAbort(err) || signal.aborted) return;
    // A view that failed outright still leaves a visible, retryable error.
    mount(main, errorPanel(err, () => route()));
    showError(err);
  }
}

window.addEventListener('samplit:unauthorized', () => {
  if (parseHash().path === '/login') return;
  sessionStorage.setItem(RETURN_KEY, location.hash);
  app.user = null;
  toast('Your session has ended — please log in again.', 'info');
  app.navigate('#/login');
});

window.addEventListener('hashchange', () => {
  // The skip link targets #main; do not treat it as a route.
  if (location.hash === '#main') return;
  route();
});

document.getElementById('skip-link').addEventListener('click', (ev) => {
  ev.preventDefault();
  main.focus();
});

navToggle.addEventListener('click', () => {
  const open = nav.classList.toggle('open');
  navToggle.setAttribute('aria-expanded', String(open));
});

// Unexpected failures are shown, not swallowed (and not left as silent console noise).
window.addEventListener('unhandledrejection', (ev) => {
  if (isAbort(ev.reason)) { ev.preventDefault(); return; }
  showError(ev.reason);
});

(async () => {
  const limitsLoaded = loadLimits().catch((err) => showError(err, 'Could not load the server limits'));
  if (getToken()) await loadUser();
  await limitsLoaded;
  route();
})();
