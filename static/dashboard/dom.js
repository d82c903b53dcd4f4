// Small DOM helpers. Everything is built with DOM APIs (never innerHTML with data),
// which keeps user-controlled strings (experiment names, API messages) inert and
// satisfies the Content-Security-Policy (no inline styles or scripts).

const SVG_NS = 'http://www.w3.org/2000/svg';
let idCounter = 0;

/** A unique id for label/input pairs. */
export function uid(prefix = 'f') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

function applyProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'hidden' || key === 'open') {
      el[key] = Boolean(value);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** h('button', {class: 'btn', onclick}, 'Save') */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  appendChildren(el, children);
  return el;
}

/** Same as h() for SVG elements (attributes only, no properties). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') el.textContent = value;
    else el.setAttribute(key, String(value));
  }
  appendChildren(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replace the content of `el` with the given children. */
export function mount(el, ...children) {
  clear(el);
  appendChildren(el, children);
  return el;
}

/** A labelled form field; `control` is the input/select/textarea. */
export function field(label, control, { hint, field: fieldName, class: cls } = {}) {
  if (!control.id) control.id = uid();
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: `${control.id}-hint` }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: ['field', cls], 'data-field': fieldName },
    h('label', { for: control.id }, label),
    control,
    hintEl,
  );
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status', 'aria-live': 'polite' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function emptyState(message, action) {
  return h('div', { class: 'empty', 'data-testid': 'empty-state' }, h('p', null, message), action || null);
}

/** Inline error panel for a failed load (the view stays usable, the error is visible). */
export function errorPanel(err, retry) {
  return h('div', { class: 'panel error-panel', role: 'alert', 'data-testid': 'error-panel' },
    h('p', null, h('strong', null, 'Could not load: '), describeError(err)),
    retry ? h('button', { type: 'button', class: 'btn', onclick: retry }, 'Try again') : null,
  );
}

export function describeError(err) {
  if (!err) return 'Unknown error';
  if (err.status) return `${err.message} (${err.code || 'HTTP ' + err.status})`;
  return err.message || String(err);
}
