// One experiment: header, lifecycle actions (each confirmed in a <dialog>), results,
// the variants as defined, and how to install.
import { h, mount, loading, errorPanel, field } from '../dom.js';
import { api } from '../api.js';
import { toast, showError, confirmDialog, statusBadge, copyButton } from '../ui.js';
import * as f from '../format.js';
import { renderResults, armLabel, variantNames } from './results.js';
import { renderWaves } from './waves.js';

export async function render({ root, params, signal, app }) {
  const page = h('div', { class: 'page' });
  mount(root, page);
  mount(page, loading('Loading the experiment…'));
  let exp;
  try {
    exp = await api.get(`/experiments/${encodeURIComponent(params.id)}`, { signal });
  } catch (err) {
    if (signal.aborted) return;
    mount(page, h('p', null, h('a', { href: '#/experiments' }, '← All experiments')),
      errorPanel(err, () => app.navigate(location.hash)));
    return;
  }
  document.title = `${exp.name} · Samplit`;

  let analytics = null;
  const campaign = exp.type === 'campaign';
  const wavesRoot = campaign ? h('section', { class: 'panel', 'data-testid': 'waves' }) : null;
  const reload = () => app.navigate(location.hash);
  const resultsRoot = h('div', { class: 'results-root' });

  /** Run a lifecycle call; a 409 (someone else changed it) is shown, then we reload. */
  async function transition(label, call, done) {
    try {
      await call();
      toast(done, 'success');
    } catch (err) {
      showError(err, `Could not ${label}`);
      if (err.status !== 409 && err.status !== 404) return;
    }
    reload();
  }

  const id = encodeURIComponent(exp.id);
  const actions = {
    start: async () => {
      const ok = await confirmDialog({
        title: 'Start the experiment?',
        message: campaign
          ? 'Waves can be sent once it runs; each follows the weights of the moment. Variants cannot be edited afterwards.'
          : `Visitors on pages with the snippet${exp.target_url ? ` matching ${exp.target_url}` : ''} will start seeing the variants. Elements and variants cannot be edited afterwards.`,
        confirmLabel: 'Start',
      });
      if (ok) transition('start', () => api.post(`/experiments/${id}/start`, {}), 'Experiment started.');
    },
    pause: async () => {
      const ok = await confirmDialog({ title: 'Pause the experiment?', message: 'New visitors will see the original page until you resume. Results so far are kept.', confirmLabel: 'Pause' });
      if (ok) transition('pause', () => api.post(`/experiments/${id}/pause`, {}), 'Experiment paused.');
    },
    resume: async () => {
      const ok = await confirmDialog({ title: 'Resume the experiment?', message: 'Visitors will be assigned to the variants again.', confirmLabel: 'Resume' });
      if (ok) transition('resume', () => api.post(`/experiments/${id}/resume`, {}), 'Experiment resumed.');
    },
    complete: async (preselect) => completeDialog(preselect),
    archive: async () => {
      const ok = await confirmDialog({
        title: 'Archive the experiment?',
        message: exp.status === 'running' || exp.status === 'paused'
          ? 'It stops assigning visitors and moves to the archive. Its data is kept.'
          : 'It moves to the archive. Its data is kept.',
        confirmLabel: 'Archive', danger: true,
      });
      if (ok) {
        try {
          await api.del(`/experiments/${id}`);
          toast('Experiment archived.', 'success');
          app.navigate('#/experiments');
        } catch (err) { showError(err, 'Could not archive'); }
      }
    },
    destroy: async () => {
      const ok = await confirmDialog({ title: 'Delete this draft?', message: 'The draft is removed for good. This cannot be undone.', confirmLabel: 'Delete draft', danger: true });
      if (ok) {
        try {
          await api.del(`/experiments/${id}`, { query: { hard: 'true' } });
          toast('Draft deleted.', 'success');
          app.navigate('#/experiments');
        } catch (err) { showError(err, 'Could not delete'); }
      }
    },
  };

  /** Winner choices: the analytics arms, else (A/B) the defined variants. */
  function winnerChoices() {
    const names = variantNames(exp);
    if (analytics && analytics.arms && analytics.arms.length) {
      return analytics.arms.map((arm) => ({
        // For A/B an arm is one variant; for multi-element the arm id names the combination.
        value: exp.type === 'ab_test' && arm.variant_ids && arm.variant_ids.length === 1 ? arm.variant_ids[0] : arm.arm_id,
        armId: arm.arm_id,
        text: `${armLabel(arm, names)} — ${f.pct(arm.conversion_rate, 2)}, P(best) ${f.pct(arm.prob_best)}`,
      }));
    }
    return ((exp.elements && exp.elements[0] && exp.elements[0].variants) || []).map((v) => ({ value: v.id, armId: v.id, text: v.name }));
  }

  async function completeDialog(preselect) {
    const choices = winnerChoices();
    const rec = analytics && analytics.recommendation;
    const suggested = preselect || (rec && rec.winner_arm_id) || null;
    const select = h('select', { 'data-testid': 'winner-select' },
      h('option', { value: '' }, 'No winner (keep the original page)'),
      choices.map((c) => h('option', { value: c.value, selected: c.armId === suggested || c.value === suggested }, c.text)));
    const body = h('div', null, field('Winner', select, { hint: 'The winner is recorded with the experiment. Visitors stop being assigned.' }));
    const winner = await confirmDialog({ title: 'Complete the experiment?', message: null, body, confirmLabel: 'Complete', collect: () => ({ value: select.value }) });
    if (!winner) return;
    const payload = winner.value ? { winner_variant_id: winner.value } : {};
    transition('complete', () => api.post(`/experiments/${id}/complete`, payload), 'Experiment completed.');
  }

  const btn = (text, onclick, { primary = false, danger = false, testid } = {}) =>
    h('button', { type: 'button', class: ['btn', primary && 'btn-primary', danger && 'btn-danger-outline'], onclick: () => onclick(), 'data-testid': testid }, text);
  const buttons = {
    draft: [
      h('a', { class: 'btn', href: `#/experiments/${id}/edit`, 'data-testid': 'edit-button' }, 'Edit'),
      btn('Start', actions.start, { primary: true, testid: 'start-button' }),
      btn('Delete draft', actions.destroy, { danger: true, testid: 'delete-button' }),
    ],
    running: [
      btn('Pause', actions.pause, { testid: 'pause-button' }),
      btn('Complete…', () => actions.complete(), { primary: true, testid: 'complete-button' }),
      btn('Archive', actions.archive, { danger: true, testid: 'archive-button' }),
    ],
    paused: [
      btn('Resume', actions.resume, { primary: true, testid: 'resume-button' }),
      btn('Complete…', () => actions.complete(), { testid: 'complete-button' }),
      btn('Archive', actions.archive, { danger: true, testid: 'archive-button' }),
    ],
    completed: [btn('Archive', actions.archive, { danger: true, testid: 'archive-button' })],
  }[exp.status] || [];

  const meta = [
    ['Type', f.label(f.TYPE_LABEL, exp.type)],
    ['Allocation', f.label(f.ALLOCATION_LABEL, exp.allocation)],
    campaign ? ['Channel', f.label(f.CHANNEL_LABEL, exp.channel)] : ['Traffic share', f.pct(exp.traffic_allocation, 0)],
    ['Goal', f.goalText(exp.goal)],
    campaign ? null : ['Target URL', exp.target_url || 'every page with the snippet'],
    ['Created', f.dateTime(exp.created_at)],
    exp.started_at ? ['Started', f.dateTime(exp.started_at)] : null,
    exp.completed_at ? ['Completed', f.dateTime(exp.completed_at)] : null,
  ].filter(Boolean);

  mount(page,
    h('p', { class: 'crumbs' }, h('a', { href: '#/experiments' }, '← All experiments')),
    h('div', { class: 'page-head' },
      h('div', null,
        h('h1', { 'data-testid': 'experiment-title' }, exp.name, ' ', statusBadge(exp.status)),
        exp.description ? h('p', { class: 'muted' }, exp.description) : null),
      h('div', { class: 'actions', 'data-testid': 'lifecycle-actions' }, buttons,
        exp.status !== 'draft' ? h('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'refresh-results', onclick: () => loadResults() }, 'Refresh') : null)),
    h('dl', { class: 'meta' }, meta.map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v)))),
    wavesRoot,
    resultsRoot,
    definitionSection(exp),
    campaign ? null : installSection(exp, signal));

  async function loadResults() {
    if (wavesRoot) await renderWaves(wavesRoot, exp, signal);
    analytics = await renderResults(resultsRoot, exp, signal);
    // When the recommendation names a winner of a live experiment, offer to finish.
    const rec = analytics && analytics.recommendation;
    if (rec && rec.decision === 'declare_winner' && rec.winner_arm_id && (exp.status === 'running' || exp.status === 'paused')) {
      const slot = resultsRoot.querySelector('[data-testid="recommendation"]');
      if (slot) slot.append(h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'complete-with-winner', onclick: () => actions.complete(rec.winner_arm_id) }, 'Complete with this winner…'));
    }
  }
  await loadResults();
}

function contentSummary(content) {
  const c = content || {};
  const keys = Object.keys(c);
  if (!keys.length) return h('span', { class: 'muted' }, 'unchanged (original page)');
  return h('code', { class: 'content-json' }, JSON.stringify(c));
}

/** A campaign's variants: the subject line (or push title) and body of each message. */
function messagesSection(exp) {
  const variants = (exp.elements && exp.elements[0] && exp.elements[0].variants) || [];
  const text = (x) => (typeof x === 'string' && x ? x : h('span', { class: 'muted' }, 'empty'));
  return h('section', { class: 'panel', 'data-testid': 'definition' },
    h('h2', null, 'Messages'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Variant'),
        h('th', { scope: 'col' }, exp.channel === 'push' ? 'Title' : 'Subject line'), h('th', { scope: 'col' }, 'Body'))),
      h('tbody', null, variants.map((v) => h('tr', null,
        h('th', { scope: 'row' }, v.name, v.is_control ? h('span', { class: 'tag' }, 'control') : null),
        h('td', null, text(v.content && v.content.text)),
        h('td', null, h('code', { class: 'content-json' }, (v.content && v.content.html) || ''))))))));
}

function definitionSection(exp) {
  if (exp.type === 'campaign') return messagesSection(exp);
  return h('section', { class: 'panel', 'data-testid': 'definition' },
    h('h2', null, exp.type === 'multi_element' ? 'Elements and variants' : 'Variants'),
    (exp.elements || []).map((el) => h('div', { class: 'definition' },
      exp.type === 'multi_element' || el.selector
        ? h('h3', null, exp.type === 'multi_element' ? el.name : 'Element', ' ', el.selector ? h('code', null, el.selector) : null)
        : null,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Variant'), exp.allocation === 'fixed' ? h('th', { scope: 'col', class: 'num' }, 'Weight') : null, h('th', { scope: 'col' }, 'Content'))),
        h('tbody', null, (el.variants || []).map((v) => h('tr', null,
          h('th', { scope: 'row' }, v.name, v.is_control ? h('span', { class: 'tag' }, 'control') : null),
          exp.allocation === 'fixed' ? h('td', { class: 'num' }, Number.isFinite(v.weight) ? f.pct(v.weight) : 'equal') : null,
          h('td', null, contentSummary(v.content))))))))));
}

function installSection(exp, signal) {
  const body = h('div', { class: 'install-body' });
  const show = h('button', { type: 'button', class: 'btn', 'data-testid': 'show-snippet', 'aria-expanded': 'false' }, 'Show the snippet');
  show.addEventListener('click', async () => {
    show.disabled = true;
    mount(body, loading('Loading the snippet…'));
    try {
      const inst = await api.get('/installations', { signal });
      const pre = h('pre', { class: 'snippet', 'data-testid': 'experiment-snippet' }, h('code', null, inst.snippet || ''));
      mount(body, pre, copyButton(() => inst.snippet || '', { label: 'Copy snippet' }));
      show.setAttribute('aria-expanded', 'true');
      show.remove();
    } catch (err) {
      if (signal.aborted) return;
      mount(body, errorPanel(err));
      show.disabled = false;
    }
  });
  const goalHint = exp.goal && exp.goal.type === 'custom'
    ? h('p', null, 'This experiment counts a custom event: report it with ', h('code', null, 'POST /api/v1/tracker/convert'), ' and ', h('code', null, `{"site_key", "experiment_id": "${exp.id}", "user_id", "goal": "${exp.goal.name || ''}"}`), '.')
    : null;
  return h('section', { class: 'panel', 'data-testid': 'install-hint' },
    h('h2', null, 'Installation'),
    h('p', null, 'Paste your site’s Samplit snippet into the ', h('code', null, '<head>'), ' of every page ',
      exp.target_url ? ['matching ', h('code', null, exp.target_url)] : 'you test', '. It applies running experiments and records the goal; there is nothing to add per experiment. ',
      h('a', { href: '#/install' }, 'Installation page')),
    h('p', { class: 'muted' }, 'Experiment id: ', h('code', { 'data-testid': 'experiment-id' }, exp.id)),
    goalHint, show, body);
}
