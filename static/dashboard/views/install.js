// Installation: the site key and the one <script> tag to paste into a site, a check that
// a page carries it (POST /installations/verify), and the WordPress and Shopify ways in.
import { h, mount, loading, errorPanel, field, describeError } from '../dom.js';
import { api, download } from '../api.js';
import { copyButton, selectContents, showError } from '../ui.js';

/** What a verification answer means, in one sentence, and whether it is good news. */
export function verdict(v) {
  const status = `The page answered HTTP ${v.status_code}.`;
  if (v.site_key_matches) return { ok: true, text: `Snippet found with your site key. ${status}` };
  if (v.snippet_found) return { ok: false, text: `A Samplit snippet is there, but with another site key: paste yours instead. ${status}` };
  if (v.status_code >= 400) return { ok: false, text: `No snippet found, and the page is an error page. Check the address. ${status}` };
  return { ok: false, text: `No Samplit snippet found on this page. Paste it into the <head> and check again. ${status}` };
}

function checkSection(signal) {
  const input = h('input', { type: 'url', name: 'url', placeholder: 'https://www.example.com/', required: true, autocomplete: 'url', 'data-testid': 'check-url' });
  const button = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'check-button' }, 'Check my site');
  const result = h('div', { class: 'check-result', role: 'status', 'aria-live': 'polite', 'data-testid': 'check-result' });
  const form = h('form', { class: 'check-form', novalidate: true },
    field('Page address', input, { hint: 'A page of your site that should carry the snippet. Samplit fetches it from the server.', field: 'url' }),
    h('div', { class: 'row-actions' }, button));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const url = input.value.trim();
    if (!url) { mount(result, h('p', { class: 'check-bad' }, 'Enter the address of a page of your site.')); input.focus(); return; }
    button.setAttribute('aria-busy', 'true');
    button.disabled = true;
    mount(result, loading('Fetching the page…'));
    try {
      const v = await api.post('/installations/verify', { url }, { signal });
      const { ok, text } = verdict(v);
      mount(result,
        h('p', { class: ok ? 'check-ok' : 'check-bad', 'data-testid': 'check-verdict', 'data-found': String(v.snippet_found), 'data-matches': String(v.site_key_matches) }, text),
        h('dl', { class: 'check-facts' },
          h('dt', null, 'Snippet found'), h('dd', { 'data-testid': 'check-found' }, v.snippet_found ? 'yes' : 'no'),
          h('dt', null, 'Site key matches'), h('dd', { 'data-testid': 'check-matches' }, v.site_key_matches ? 'yes' : 'no'),
          h('dt', null, 'Status code'), h('dd', { 'data-testid': 'check-status' }, String(v.status_code))));
    } catch (err) {
      if (signal.aborted) return;
      const why = err.code === 'VALIDATION_FAILED' ? `That address cannot be checked: ${err.message.replace(/^url: /, '')}`
        : err.code === 'FETCH_FAILED' ? `Samplit could not reach the page: ${err.message}`
        : `The check failed: ${describeError(err)}`;
      mount(result, h('p', { class: 'check-bad', 'data-testid': 'check-verdict' }, why));
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  });
  return h('section', { class: 'panel' },
    h('h2', null, 'Check my site'),
    h('p', null, 'Once the snippet is in place, check that a page carries it with your site key.'),
    form, result);
}

function wordpressSection(signal) {
  const btn = h('button', { type: 'button', class: 'btn', 'data-testid': 'download-wordpress' }, 'Download WordPress plugin');
  btn.addEventListener('click', async () => {
    btn.setAttribute('aria-busy', 'true');
    try {
      await download('/integrations/wordpress.zip', undefined, 'samplit-wordpress.zip', { signal });
    } catch (err) {
      if (!signal.aborted) showError(err, 'Could not download the plugin');
    } finally {
      btn.removeAttribute('aria-busy');
    }
  });
  return h('section', { class: 'panel' },
    h('h2', null, 'WordPress'),
    h('p', null, 'A plugin with your snippet built in: in WordPress, go to Plugins → Add New → Upload Plugin, choose the zip, then Activate.'),
    h('div', { class: 'row-actions' }, btn));
}

async function shopifySection(signal) {
  const body = h('div', null, loading('Loading the Shopify steps…'));
  const section = h('section', { class: 'panel', 'data-testid': 'shopify' }, h('h2', null, 'Shopify'), body);
  api.get('/integrations/shopify', { signal }).then((s) => {
    const code = h('code', null, s.snippet);
    mount(body,
      h('ol', { class: 'steps' }, s.steps.map((step) => h('li', null, step))),
      h('pre', { class: 'snippet', tabindex: '0', 'aria-label': 'Snippet for theme.liquid' }, code),
      h('div', { class: 'row-actions' }, copyButton(() => s.snippet, { label: 'Copy snippet', testid: 'copy-shopify', selectOnFail: () => selectContents(code) })));
  }, (err) => { if (!signal.aborted) mount(body, errorPanel(err)); });
  return section;
}

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
        copyButton(() => inst.site_key || '', { label: 'Copy', testid: 'copy-site-key' }))),
    checkSection(signal),
    wordpressSection(signal),
    await shopifySection(signal));
}
