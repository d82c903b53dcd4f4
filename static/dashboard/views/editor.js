// Create and edit draft experiments: A/B (a control and challengers), multi-element
// (several elements with their variants) or a campaign (email or push: variants are subject
// lines and bodies, sent in waves). The form mirrors the API body one-to-one, and each
// control's wrapper carries data-field="<API path>" so 422 errors land beside it.
import { h, mount, field, loading, errorPanel, uid } from '../dom.js';
import { api, limits } from '../api.js';
import { toast, statusBadge } from '../ui.js';
import { clearErrors, showApiError, showFieldError, formErrors } from '../forms.js';

// Limits and content keys come from the server (api.js `limits`, GET /meta/limits).
// Content keys tracker.js understands; text and html have their own inputs.
const advancedKeys = () => limits.content_keys.filter((k) => k !== 'text' && k !== 'html');

const newVariant = (name, isControl = false) => ({ id: undefined, name, is_control: isControl, weight: '', text: '', html: '', advanced: '' });
const newElement = (n) => ({ id: undefined, name: `Element ${n}`, selector: '', variants: [newVariant('A', true), newVariant('B')] });
const letter = (i) => (i < 26 ? String.fromCharCode(65 + i) : `V${i + 1}`);

function emptyState() {
  return {
    name: '', description: '', type: 'ab_test', channel: 'email', allocation: 'adaptive', traffic: 100,
    target_url: '', selector: '',
    goal: { type: 'click', selector: '', url: '', name: '' },
    variants: [newVariant('Control', true), newVariant('B')],
    elements: [newElement(1), newElement(2)],
  };
}

/** API variant -> form state (content split into simple fields + advanced JSON). */
function variantFromApi(v, showWeights) {
  const content = { ...(v.content || {}) };
  const text = typeof content.text === 'string' ? content.text : '';
  const html = typeof content.html === 'string' ? content.html : '';
  delete content.text;
  delete content.html;
  return {
    id: v.id, name: v.name || '', is_control: Boolean(v.is_control),
    weight: showWeights && Number.isFinite(v.weight) ? String(Number((v.weight * 100).toFixed(4))) : '',
    text, html, advanced: Object.keys(content).length ? JSON.stringify(content, null, 2) : '',
  };
}

function stateFromApi(exp) {
  const st = emptyState();
  const fixed = exp.allocation === 'fixed';
  Object.assign(st, {
    name: exp.name || '', description: exp.description || '', type: exp.type || 'ab_test',
    channel: exp.channel || 'email',
    allocation: exp.allocation || 'adaptive',
    traffic: Number.isFinite(exp.traffic_allocation) ? Math.round(exp.traffic_allocation * 1000) / 10 : 100,
    target_url: exp.target_url || '',
    goal: { type: 'click', selector: '', url: '', name: '', ...(exp.goal || {}) },
  });
  const elements = exp.elements || [];
  if (st.type !== 'multi_element') {
    const el = elements[0] || { variants: exp.variants || [] };
    st.selector = el.selector || exp.selector || '';
    if (el.variants && el.variants.length) st.variants = el.variants.map((v) => variantFromApi(v, fixed));
  } else if (elements.length) {
    st.elements = elements.map((el) => ({ id: el.id, name: el.name || '', selector: el.selector || '', variants: (el.variants || []).map((v) => variantFromApi(v, fixed)) }));
  }
  return st;
}

/**
 * Form state -> API body. Client-side problems are collected as {field, message}
 * with the same paths the API uses, so they display the same way.
 */
export function buildBody(st) {
  const problems = [];
  const campaign = st.type === 'campaign';
  const body = {
    name: st.name.trim(),
    description: st.description.trim() || null,
    allocation: st.allocation,
    traffic_allocation: campaign ? 1 : Math.min(1, Math.max(0, Number(st.traffic) / 100)),
    target_url: campaign ? null : st.target_url.trim() || null,
    goal: { type: st.goal.type },
  };
  if (campaign) body.channel = st.channel;
  if (!body.name) problems.push({ field: 'name', message: 'Give the experiment a name.' });
  if (!Number.isFinite(Number(st.traffic)) || st.traffic === '' || st.traffic < 0 || st.traffic > 100) {
    problems.push({ field: 'traffic_allocation', message: 'Traffic share must be between 0 and 100%.' });
  }
  // A campaign's goal (an open, a click on a link) names nothing more.
  const goalKey = campaign ? null : { click: 'selector', pageview: 'url', custom: 'name' }[st.goal.type];
  if (goalKey) body.goal[goalKey] = (st.goal[goalKey] || '').trim();
  if (goalKey && !body.goal[goalKey]) problems.push({ field: `goal.${goalKey}`, message: { selector: 'Which element counts as a conversion when clicked?', url: 'Which page counts as a conversion?', name: 'Name the custom event.' }[goalKey] });

  const variantsBody = (variants, prefix) => {
    if (variants.length < limits.min_variants) problems.push({ field: prefix, message: `Add at least ${limits.min_variants} variants.` });
    if (variants.length > limits.max_variants) problems.push({ field: prefix, message: `At most ${limits.max_variants} variants.` });
    const fixed = st.allocation === 'fixed';
    const given = variants.filter((v) => String(v.weight).trim() !== '');
    if (fixed && given.length && given.length !== variants.length) {
      problems.push({ field: prefix, message: 'Give every variant a weight, or leave all empty for an equal split.' });
    }
    const weights = variants.map((v) => Number(v.weight));
    const sum = weights.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    return variants.map((v, i) => {
      const path = `${prefix}[${i}]`;
      const out = { name: v.name.trim(), is_control: Boolean(v.is_control), content: {} };
      if (v.id) out.id = v.id;
      if (!out.name) problems.push({ field: `${path}.name`, message: 'Name this variant.' });
      if (v.advanced.trim()) {
        try {
          const extra = JSON.parse(v.advanced);
          if (!extra || typeof extra !== 'object' || Array.isArray(extra)) throw new Error('It must be a JSON object, like {"hide": true}.');
          const unknown = Object.keys(extra).filter((k) => !limits.content_keys.includes(k));
          if (unknown.length) throw new Error(`Unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} — allowed: ${advancedKeys().join(', ')}.`);
          Object.assign(out.content, extra);
        } catch (err) {
          problems.push({ field: `${path}.content`, message: `Advanced content: ${err.message}` });
        }
      }
      // The simple inputs win over the same keys in the JSON.
      if (v.text !== '') out.content.text = v.text;
      if (v.html !== '') out.content.html = v.html;
      if (fixed && given.length === variants.length) {
        const w = weights[i];
        if (!Number.isFinite(w) || w < 0) problems.push({ field: `${path}.weight`, message: 'A weight is a number ≥ 0.' });
        else if (sum > 0) out.weight = Number((w / sum).toFixed(6)); // relative numbers -> shares summing to 1
      }
      return out;
    });
  };

  if (campaign) {
    body.variants = variantsBody(st.variants, 'variants');
  } else if (st.type === 'ab_test') {
    body.selector = st.selector.trim() || null;
    body.variants = variantsBody(st.variants, 'variants');
  } else {
    if (!st.elements.length) problems.push({ field: 'elements', message: 'Add at least one element.' });
    if (st.elements.length > limits.max_elements) problems.push({ field: 'elements', message: `At most ${limits.max_elements} elements.` });
    body.elements = st.elements.map((el, i) => {
      const out = { name: el.name.trim(), selector: el.selector.trim(), variants: variantsBody(el.variants, `elements[${i}].variants`) };
      if (el.id) out.id = el.id;
      if (!out.name) problems.push({ field: `elements[${i}].name`, message: 'Name this element.' });
      if (!out.selector) problems.push({ field: `elements[${i}].selector`, message: 'Which element on the page? (a CSS selector)' });
      return out;
    });
  }
  return { body, problems };
}

/** For A/B tests the API may name the implied element: map its paths onto our form. */
function aliasesFor(st) {
  return (path) => {
    if (st.type !== 'multi_element') {
      if (path.startsWith('elements[0].variants')) return [path.replace('elements[0].variants', 'variants')];
      if (path.startsWith('elements[0].selector') || path === 'elements[0]') return ['selector'];
      if (path.startsWith('elements')) return ['variants'];
    } else if (path.startsWith('variants')) return ['elements'];
    return [];
  };
}

export async function render({ root, params, signal, app }) {
  const editing = Boolean(params.id);
  const page = h('div', { class: 'page' });
  mount(root, page);
  let st = emptyState();
  let exp = null;
  if (editing) {
    mount(page, loading('Loading the experiment…'));
    try {
      exp = await api.get(`/experiments/${encodeURIComponent(params.id)}`, { signal });
    } catch (err) {
      if (signal.aborted) return;
      mount(page, h('h1', null, 'Edit experiment'), errorPanel(err, () => app.navigate(location.hash)));
      return;
    }
    if (exp.status !== 'draft') {
      mount(page, h('h1', null, exp.name), h('div', { class: 'banner banner-info', role: 'status' },
        'Only drafts can be edited; this experiment is ', statusBadge(exp.status), '. ',
        h('a', { href: `#/experiments/${encodeURIComponent(exp.id)}` }, 'Back to the experiment')));
      return;
    }
    st = stateFromApi(exp);
  }

  const form = h('form', { class: 'form editor', novalidate: true, 'data-testid': 'experiment-form' });
  const heading = h('div', { class: 'page-head' },
    h('h1', null, editing ? `Edit “${exp.name}”` : 'New experiment'),
    editing ? statusBadge('draft') : null);
  mount(page, heading, form);

  // Focus restoration after a structural re-render (add/remove rows).
  let focusAfter = null;
  const rerender = () => {
    drawForm();
    if (focusAfter) {
      const el = form.querySelector(focusAfter);
      if (el) el.focus();
      focusAfter = null;
    }
  };

  const bind = (input, get, set, { rerenderOnChange = false } = {}) => {
    input.value = get();
    input.addEventListener(input.tagName === 'SELECT' ? 'change' : 'input', () => {
      set(input.value);
      if (rerenderOnChange) rerender();
    });
    return input;
  };

  function textInput(get, set, attrs = {}) {
    return bind(h('input', { type: 'text', ...attrs }), get, set);
  }

  function radioGroup(name, legend, options, get, set, { disabled = false, fieldName, testid } = {}) {
    const groupName = uid(name);
    return h('fieldset', { class: 'radio-group', 'data-field': fieldName, 'data-testid': testid },
      h('legend', null, legend),
      options.map(([value, text, hint]) => {
        const input = h('input', { type: 'radio', name: groupName, value, checked: get() === value, disabled, 'data-testid': `${testid}-${value}` });
        input.addEventListener('change', () => { if (input.checked) { set(value); rerender(); } });
        return h('label', { class: 'radio' }, input, h('span', null, h('strong', null, text), hint ? h('span', { class: 'hint' }, ` — ${hint}`) : null));
      }));
  }

  function variantEditor(variants, i, prefix, ownerLabel) {
    const v = variants[i];
    const path = `${prefix}[${i}]`;
    const controlName = `control-${prefix}`;
    const control = h('input', { type: 'radio', name: controlName, checked: v.is_control, 'data-testid': 'variant-control' });
    control.addEventListener('change', () => { variants.forEach((x, k) => { x.is_control = k === i; }); });
    const remove = h('button', {
      type: 'button', class: 'btn btn-ghost btn-small', disabled: variants.length <= limits.min_variants,
      'aria-label': `Remove variant ${v.name || i + 1}${ownerLabel ? ` of ${ownerLabel}` : ''}`, 'data-testid': 'remove-variant',
      onclick: () => {
        variants.splice(i, 1);
        if (!variants.some((x) => x.is_control) && variants.length) variants[0].is_control = true;
        focusAfter = `[data-field="${CSS.escape(prefix)}"] .add-variant`;
        rerender();
      },
    }, 'Remove');
    const weight = st.allocation === 'fixed'
      ? field('Weight', bind(h('input', { type: 'number', min: '0', step: 'any', inputmode: 'decimal', placeholder: 'equal', 'data-testid': 'variant-weight' }),
        () => v.weight, (x) => { v.weight = x; updateShares(); }), { field: `${path}.weight`, class: 'field-weight' })
      : null;
    const advancedId = uid('adv');
    const details = h('details', { class: 'advanced', open: Boolean(v.advanced.trim()) || v.showAdvanced },
      h('summary', null, 'Advanced content (JSON)'),
      h('p', { class: 'hint', id: `${advancedId}-hint` }, 'Other changes to the element, e.g. ',
        h('code', null, '{"attributes": {"href": "/sale"}, "style": {"color": "#a00"}, "add_class": ["big"], "remove_class": ["old"], "hide": true, "redirect": "https://…"}')),
      bind(h('textarea', { id: advancedId, rows: 4, spellcheck: 'false', class: 'mono', 'aria-label': 'Advanced content JSON', 'aria-describedby': `${advancedId}-hint`, 'data-testid': 'variant-advanced' }),
        () => v.advanced, (x) => { v.advanced = x; }));
    // Keep it open across re-renders once the user opened it.
    details.addEventListener('toggle', () => { v.showAdvanced = details.open; });
    return h('div', { class: 'variant', 'data-field': path, 'data-testid': 'variant-row' },
      h('div', { class: 'variant-head' },
        field('Variant name', textInput(() => v.name, (x) => { v.name = x; }, { 'data-testid': 'variant-name', maxlength: limits.max_name }), { field: `${path}.name`, class: 'grow' }),
        weight,
        h('label', { class: 'radio control-pick' }, control, 'Control'),
        remove),
      st.type === 'campaign'
        // A message's subject line and body travel as the content's text and html.
        ? h('div', { class: 'variant-content', 'data-field': `${path}.content` },
          field(st.channel === 'push' ? 'Title' : 'Subject line', textInput(() => v.text, (x) => { v.text = x; }, { 'data-testid': 'variant-text' }), { field: `${path}.content.text` }),
          field('Body', bind(h('textarea', { rows: 3, 'data-testid': 'variant-html' }), () => v.html, (x) => { v.html = x; }),
            { field: `${path}.content.html`, hint: 'What your mail or push tool sends (HTML for email).' }))
        : h('div', { class: 'variant-content', 'data-field': `${path}.content` },
          field('Text', textInput(() => v.text, (x) => { v.text = x; }, { placeholder: 'unchanged', 'data-testid': 'variant-text' }), { field: `${path}.content.text` }),
          field('HTML', bind(h('textarea', { rows: 2, placeholder: 'unchanged', class: 'mono', 'data-testid': 'variant-html' }), () => v.html, (x) => { v.html = x; }),
            { field: `${path}.content.html`, hint: 'Replaces the element’s inner HTML. Leave text and HTML empty for the control.' }),
          details));
  }

  function variantsList(variants, prefix, ownerLabel) {
    const add = h('button', {
      type: 'button', class: 'btn add-variant', disabled: variants.length >= limits.max_variants, 'data-testid': 'add-variant',
      onclick: () => {
        variants.push(newVariant(letter(variants.length)));
        focusAfter = `[data-field="${CSS.escape(`${prefix}[${variants.length - 1}].name`)}"] input`;
        rerender();
      },
    }, '+ Add variant');
    return h('div', { class: 'variants', 'data-field': prefix, 'data-testid': 'variants' },
      variants.map((_, i) => variantEditor(variants, i, prefix, ownerLabel)),
      h('div', { class: 'row-actions' }, add, h('span', { class: 'hint' }, `${variants.length} of ${limits.max_variants} variants`)),
      st.allocation === 'fixed' ? h('p', { class: 'hint share-hint', 'data-share-for': prefix }) : null);
  }

  // Live "= 50% / 50%" preview of fixed weights.
  function updateShares() {
    const lists = st.type !== 'multi_element' ? [['variants', st.variants]] : st.elements.map((el, i) => [`elements[${i}].variants`, el.variants]);
    for (const [prefix, variants] of lists) {
      const slot = form.querySelector(`[data-share-for="${CSS.escape(prefix)}"]`);
      if (!slot) continue;
      const ws = variants.map((v) => Number(v.weight));
      const filled = variants.every((v) => String(v.weight).trim() !== '' && Number.isFinite(Number(v.weight)));
      const sum = ws.reduce((a, b) => a + b, 0);
      slot.textContent = filled && sum > 0
        ? `Split: ${variants.map((v, i) => `${v.name || `#${i + 1}`} ${(ws[i] / sum * 100).toFixed(1)}%`).join(' · ')}`
        : 'Weights are relative (e.g. 50 / 50 or 1 / 3). Leave all empty for an equal split.';
    }
  }

  function elementsList() {
    const add = h('button', {
      type: 'button', class: 'btn', disabled: st.elements.length >= limits.max_elements, 'data-testid': 'add-element',
      onclick: () => {
        st.elements.push(newElement(st.elements.length + 1));
        focusAfter = `[data-field="elements[${st.elements.length - 1}].name"] input`;
        rerender();
      },
    }, '+ Add element');
    return h('div', { class: 'elements', 'data-field': 'elements' },
      st.elements.map((el, i) => h('fieldset', { class: 'element', 'data-field': `elements[${i}]`, 'data-testid': 'element' },
        h('legend', null, `Element ${i + 1}`),
        h('div', { class: 'grid-2' },
          field('Element name', textInput(() => el.name, (x) => { el.name = x; }, { 'data-testid': 'element-name' }), { field: `elements[${i}].name` }),
          field('CSS selector', textInput(() => el.selector, (x) => { el.selector = x; }, { placeholder: '#cta', class: 'mono', 'data-testid': 'element-selector' }), { field: `elements[${i}].selector` })),
        variantsList(el.variants, `elements[${i}].variants`, el.name),
        h('button', {
          type: 'button', class: 'btn btn-ghost', disabled: st.elements.length <= 1, 'data-testid': 'remove-element',
          onclick: () => { st.elements.splice(i, 1); focusAfter = '[data-testid="add-element"]'; rerender(); },
        }, `Remove element ${i + 1}`))),
      h('div', { class: 'row-actions' }, add, h('span', { class: 'hint' }, `${st.elements.length} of ${limits.max_elements} elements · ${combinations()} combinations`)));
  }

  const combinations = () => st.elements.reduce((n, el) => n * Math.max(1, el.variants.length), 1);

  function trafficControl() {
    const range = h('input', { type: 'range', min: '0', max: '100', step: '1', 'aria-label': 'Traffic share slider', 'data-testid': 'traffic-range' });
    const number = h('input', { type: 'number', min: '0', max: '100', step: '0.1', inputmode: 'decimal', 'data-testid': 'traffic-input', class: 'narrow' });
    range.value = String(st.traffic);
    number.value = String(st.traffic);
    range.addEventListener('input', () => { st.traffic = Number(range.value); number.value = range.value; });
    number.addEventListener('input', () => { st.traffic = number.value === '' ? '' : Number(number.value); if (number.value !== '') range.value = number.value; });
    number.id = uid();
    return h('div', { class: 'field', 'data-field': 'traffic_allocation' },
      h('label', { for: number.id }, 'Traffic share (%)'),
      h('div', { class: 'range-row' }, range, number, h('span', null, '%')),
      h('p', { class: 'hint' }, 'The share of visitors who enter the experiment; the rest see the page unchanged.'));
  }

  function goalControl() {
    if (st.type === 'campaign') {
      const type = bind(h('select', { 'data-testid': 'goal-type' },
        h('option', { value: 'open' }, 'Message opened'),
        h('option', { value: 'click' }, 'Click on a link in the message')), () => st.goal.type, (x) => { st.goal.type = x; });
      return h('div', { class: 'grid-2', 'data-field': 'goal' }, field('Goal', type, { field: 'goal.type' }));
    }
    const type = bind(h('select', { 'data-testid': 'goal-type' },
      h('option', { value: 'click' }, 'Click on an element'),
      h('option', { value: 'pageview' }, 'Visit to a page'),
      h('option', { value: 'custom' }, 'Custom event')), () => st.goal.type, (x) => { st.goal.type = x; }, { rerenderOnChange: true });
    const key = { click: 'selector', pageview: 'url', custom: 'name' }[st.goal.type];
    const labels = { selector: ['CSS selector of the element', '#buy'], url: ['Page URL (pattern, * matches anything)', 'https://shop.example/thanks*'], name: ['Event name', 'signup'] };
    return h('div', { class: 'grid-2', 'data-field': 'goal' },
      field('Goal', type, { field: 'goal.type' }),
      field(labels[key][0], textInput(() => st.goal[key] || '', (x) => { st.goal[key] = x; }, { placeholder: labels[key][1], class: key === 'name' ? '' : 'mono', 'data-testid': 'goal-value' }), { field: `goal.${key}` }));
  }

  const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'save-experiment' }, editing ? 'Save changes' : 'Create draft');

  // The goal kinds differ: a campaign counts opens (by default) or link clicks, a page
  // clicks on an element, visits or events.
  function switchGoal() {
    if (st.type === 'campaign') st.goal.type = 'open';
    else if (st.goal.type === 'open') st.goal.type = 'click';
  }

  function drawForm() {
    const campaign = st.type === 'campaign';
    mount(form,
      formErrors(),
      h('section', { class: 'panel' },
        h('h2', null, 'Basics'),
        field('Name', textInput(() => st.name, (x) => { st.name = x; }, { required: true, maxlength: limits.max_name, 'data-testid': 'experiment-name' }), { field: 'name' }),
        field('Description (optional)', bind(h('textarea', { rows: 2, 'data-testid': 'experiment-description' }), () => st.description, (x) => { st.description = x; }), { field: 'description' }),
        radioGroup('type', 'Type', [
          ['ab_test', 'A/B test', 'one element, 2–20 variants'],
          ['multi_element', 'Multi-element', 'up to 8 elements; every combination is tested'],
          ['campaign', 'Campaign', 'email or push: subject lines and bodies, sent in waves'],
        ], () => st.type, (x) => { st.type = x; switchGoal(); }, { disabled: editing, fieldName: 'type', testid: 'experiment-type' }),
        editing ? h('p', { class: 'hint' }, 'The type is fixed once the draft exists.') : null,
        campaign ? radioGroup('channel', 'Channel', [
          ['email', 'Email', 'opens are counted by a pixel, clicks by rewritten links'],
          ['push', 'Push', 'clicks (and opens, if your app loads the pixel URL)'],
        ], () => st.channel, (x) => { st.channel = x; }, { fieldName: 'channel', testid: 'channel' }) : null),
      h('section', { class: 'panel' },
        h('h2', null, campaign ? 'What counts' : 'Where and what counts'),
        campaign ? null : field('Target URL (optional)', textInput(() => st.target_url, (x) => { st.target_url = x; }, { placeholder: 'https://shop.example/*', class: 'mono', 'data-testid': 'target-url' }),
          { field: 'target_url', hint: 'Pages where the experiment runs; * matches any run of characters. Empty: every page with the snippet.' }),
        goalControl()),
      h('section', { class: 'panel' },
        h('h2', null, 'Traffic'),
        radioGroup('allocation', 'Allocation', [
          ['adaptive', 'Adaptive', 'more traffic goes to the variants that perform better (Thompson sampling)'],
          ['fixed', 'Fixed weights', 'a constant split you choose'],
        ], () => st.allocation, (x) => { st.allocation = x; }, { fieldName: 'allocation', testid: 'allocation' }),
        campaign ? h('p', { class: 'hint' }, 'Each wave is split under the weights of the moment; every recipient gets a variant.') : trafficControl()),
      campaign
        ? h('section', { class: 'panel' }, h('h2', null, 'Messages'), variantsList(st.variants, 'variants', ''))
        : st.type === 'ab_test'
        ? h('section', { class: 'panel' },
          h('h2', null, 'Variants'),
          field('CSS selector of the element to change', textInput(() => st.selector, (x) => { st.selector = x; }, { placeholder: '#hero h1', class: 'mono', 'data-testid': 'ab-selector' }),
            { field: 'selector', hint: 'Optional when variants only redirect or the goal is all you measure.' }),
          variantsList(st.variants, 'variants', ''))
        : h('section', { class: 'panel' }, h('h2', null, 'Elements'), elementsList()),
      h('div', { class: 'form-actions' },
        h('a', { class: 'btn', href: editing ? `#/experiments/${encodeURIComponent(exp.id)}` : '#/experiments' }, 'Cancel'),
        submit));
    updateShares();
  }

  drawForm();

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const { body, problems } = buildBody(st);
    if (problems.length) {
      problems.forEach((p) => showFieldError(form, p.field, p.message));
      const first = form.querySelector('[aria-invalid="true"]') || form.querySelector('.field-error');
      if (first) { first.scrollIntoView({ block: 'center' }); if (first.focus) first.focus({ preventScroll: true }); }
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Saving…';
    try {
      let saved;
      if (editing) {
        saved = await api.patch(`/experiments/${encodeURIComponent(exp.id)}`, body);
      } else {
        saved = await api.post('/experiments', { ...body, type: st.type });
      }
      toast(editing ? 'Changes saved.' : 'Draft created.', 'success');
      app.navigate(`#/experiments/${encodeURIComponent((saved && saved.id) || exp.id)}`);
    } catch (err) {
      showApiError(form, err, aliasesFor(st));
    } finally {
      submit.disabled = false;
      submit.textContent = editing ? 'Save changes' : 'Create draft';
    }
  });
}
