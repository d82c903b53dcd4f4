// Installation: the site key and the one <script> tag to paste into a site.
import { h, mount, loading, errorPanel } from '../dom.js';
import { api } from '../api.js';
import { copyButton, selectContents } from '../ui.js';

export async function render({ root, signal, app }) {
  const body = h('div', null, loading('Loading your snippet…'));
  mount(root, h('div', { class: 'page' }, h('h1', null, 'Installation'), body));
  let inst;
  try {
    inst = await api.get('/installations', { signal });
  } catch (err) {
    if (signal.aborted) return;
    mount(body, errorPanel(err, () => app.navigate(location.hash)));
    return;
  }
  const code = h('code', null, inst.snippet || '');
  const pre = h('pre', { class: 'snippet', 'data-testid': 'snippet', tabindex: '0', 'aria-label': 'Installation snippet' }, code);
  mount(body,
    h('section', { class: 'panel' },
      h('h2', null, '1. Paste this into every page'),
      h('p', null, 'Put it as high as possible in the ', h('code', null, '<head>'),
        ', before your stylesheets: it hides the elements under test until their variant is applied, so visitors never see the original flash.'),
      pre,
      h('div', { class: 'row-actions' }, copyButton(() => inst.snippet || '', { label: 'Copy snippet', testid: 'copy-snippet', selectOnFail: () => selectContents(code) }))),
    h('section', { class: 'panel' },
      h('h2', null, '2. Create and start an experiment'),
      h('p', null, 'Running experiments whose target URL matches the page apply automatically. ',
        h('a', { href: '#/experiments/new' }, 'Create an experiment'), '.')),
    h('section', { class: 'panel' },
      h('h2', null, 'Site key'),
      h('p', null, 'Identifies your site to the public tracker endpoints. It is not a secret, but it is tied to your account.'),
      h('p', null, h('code', { 'data-testid': 'site-key', class: 'key' }, inst.site_key || '—'), ' ',
        copyButton(() => inst.site_key || '', { label: 'Copy', testid: 'copy-site-key' }))));
}
