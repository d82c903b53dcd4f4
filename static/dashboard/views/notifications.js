// Email notifications: one switch per event (saved as it is flipped), a test email, and
// the emails sent lately with their delivery state.
import { h, mount, loading, errorPanel, emptyState } from '../dom.js';
import { api } from '../api.js';
import { toast, showError } from '../ui.js';
import * as f from '../format.js';

const SWITCHES = [
  { key: 'winner_found', label: 'A winner is found', hint: 'When an experiment’s leader is best with enough confidence to stop.' },
  { key: 'srm_detected', label: 'A sample ratio mismatch is detected', hint: 'When visitors are not split as the weights say — often an installation problem.' },
  { key: 'completed', label: 'An experiment is completed', hint: 'When you or a script completes an experiment, with its final numbers.' },
];

const EVENT_NAMES = {
  'experiment.winner_found': 'Winner found',
  'experiment.srm_detected': 'Sample ratio mismatch',
  'experiment.completed': 'Completed',
};

export async function render({ root, signal, app }) {
  const page = h('div', { class: 'page', 'data-testid': 'notifications-page' }, h('h1', null, 'Notifications'), loading('Loading your settings…'));
  mount(root, page);
  let status;
  try {
    status = await api.get('/notifications', { signal });
  } catch (err) {
    if (signal.aborted) return;
    mount(page, h('h1', null, 'Notifications'), errorPanel(err, () => render({ root, signal, app })));
    return;
  }

  const off = !status.smtp_configured;
  const banner = off
    ? h('div', { class: 'banner banner-warning', role: 'status', 'data-testid': 'smtp-off' },
      h('p', null, h('strong', null, 'Email is not set up on this server. '),
        'An administrator sets ', h('code', null, 'notifications.smtp_url'), ' and ', h('code', null, 'notifications.from'),
        ' in samplit.toml (or the environment); until then no email is sent.'))
    : null;

  const switches = SWITCHES.map((s) => {
    const box = h('input', { type: 'checkbox', id: `notify-${s.key}`, 'data-testid': `notify-${s.key}` });
    box.checked = Boolean(status.preferences[s.key]);
    box.addEventListener('change', () => save(s, box));
    return h('div', { class: 'switch-row' },
      box,
      h('label', { for: `notify-${s.key}` }, h('span', { class: 'switch-label' }, s.label), h('span', { class: 'hint' }, s.hint)));
  });

  const testButton = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'send-test-email', disabled: off ? true : null }, 'Send test email');
  const testResult = h('p', { class: 'hint', 'aria-live': 'polite', 'data-testid': 'test-result' },
    off ? 'Available once email is set up.' : `It goes to ${app.user ? app.user.email : 'your address'}.`);
  testButton.addEventListener('click', async () => {
    testButton.disabled = true;
    mount(testResult, 'Sending…');
    try {
      const r = await api.post('/notifications/test', {});
      mount(testResult, `Sent to ${r.to}. Check your inbox (and the spam folder).`);
      toast(`Test email sent to ${r.to}.`, 'success');
      await loadLog();
    } catch (err) {
      mount(testResult, 'Not sent: ', err.message || String(err));
      showError(err, 'The test email was not sent');
    } finally {
      testButton.disabled = false;
    }
  });

  const log = h('div', { 'data-testid': 'email-log' });

  mount(page,
    h('h1', null, 'Notifications'),
    banner,
    h('section', { class: 'panel' },
      h('h2', null, 'Email me when'),
      h('p', { class: 'hint' }, 'One email per event and experiment, with the numbers and a link to the results.'),
      h('div', { class: 'switch-list', 'data-testid': 'notification-switches' }, switches)),
    h('section', { class: 'panel' },
      h('h2', null, 'Test email'),
      h('p', { class: 'hint' }, 'Check that email reaches you before an experiment needs it.'),
      h('div', { class: 'inline-row' }, testButton),
      testResult),
    h('section', { class: 'panel' }, h('h2', null, 'Recent emails'), log));

  renderLog(status.emails);

  async function save(s, box) {
    const want = box.checked;
    box.disabled = true;
    try {
      const me = await api.patch('/auth/me', { notifications: { [s.key]: want } });
      box.checked = Boolean(me.notifications[s.key]);
      if (app.user) app.user.notifications = me.notifications;
      toast(`${want ? 'On' : 'Off'}: ${s.label.toLowerCase()}.`, 'success');
    } catch (err) {
      box.checked = !want;
      showError(err, 'Could not save the setting');
    } finally {
      box.disabled = false;
    }
  }

  async function loadLog() {
    try {
      const st = await api.get('/notifications', { signal });
      renderLog(st.emails);
    } catch (err) {
      if (!signal.aborted) mount(log, errorPanel(err, loadLog));
    }
  }

  function renderLog(items) {
    if (!items || !items.length) {
      mount(log, emptyState('No emails yet: they appear here when an experiment has news.'));
      return;
    }
    mount(log, h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Recent emails' },
      h('table', { class: 'table', 'data-testid': 'email-table' },
        h('thead', null, h('tr', null, ['Event', 'Subject', 'State', 'Attempts', 'Queued'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, items.map((e) => h('tr', { 'data-testid': 'email-row' },
          h('th', { scope: 'row', class: 'nowrap' }, h('a', { href: `#/experiments/${encodeURIComponent(e.experiment_id)}` }, EVENT_NAMES[e.event] || e.event)),
          h('td', null, e.subject),
          h('td', { class: 'nowrap', title: e.last_error || '' }, e.state, e.state === 'pending' && e.next_attempt_at ? h('span', { class: 'muted' }, ` · next ${f.dateTime(e.next_attempt_at)}`) : null),
          h('td', null, String(e.attempts)),
          h('td', { class: 'nowrap' }, f.dateTime(e.created_at))))))));
  }
}
