// Field-level validation messages. Every wrapper that can carry an error has
// data-field="<API path>", e.g. "name", "variants[1].name", "elements[0].variants".
// A 422 answer names the offending field in details.field; we show the message next
// to the closest wrapper, walking up the path ("variants[1].content.text" ->
// "variants[1].content" -> "variants[1]" -> "variants") until one exists.
import { h } from './dom.js';

export function clearErrors(form) {
  form.querySelectorAll('.field-error').forEach((el) => el.remove());
  form.querySelectorAll('[aria-invalid="true"]').forEach((el) => {
    el.removeAttribute('aria-invalid');
    const rest = (el.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && !x.endsWith('-error'));
    if (rest.length) el.setAttribute('aria-describedby', rest.join(' ')); else el.removeAttribute('aria-describedby');
  });
  form.querySelectorAll('.has-error').forEach((el) => el.classList.remove('has-error'));
}

/** Parent paths of an API field path, most specific first. */
export function fieldCandidates(path) {
  const out = [];
  let p = String(path || '');
  while (p) {
    out.push(p);
    const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
    if (cut <= 0) break;
    p = p.slice(0, cut);
  }
  return out;
}

function findWrapper(form, path, aliases) {
  const names = [path, ...(aliases ? aliases(path) : [])].filter(Boolean);
  for (const name of names) {
    for (const candidate of fieldCandidates(name)) {
      const el = form.querySelector(`[data-field="${CSS.escape(candidate)}"]`);
      if (el) return el;
    }
  }
  return null;
}

/**
 * Show `message` next to the field `path`. Returns false (and shows it in the
 * form-level slot) when no wrapper matches, so it is never lost.
 */
export function showFieldError(form, path, message, aliases) {
  const wrapper = path ? findWrapper(form, path, aliases) : null;
  const errorEl = h('p', { class: 'field-error', role: 'alert', 'data-testid': 'field-error', 'data-error-for': path || '' }, message);
  if (wrapper) {
    wrapper.classList.add('has-error');
    const control = wrapper.matches('input,select,textarea') ? wrapper
      : wrapper.classList.contains('field') ? wrapper.querySelector('input:not([type=range]), select, textarea') : null;
    if (control) {
      control.setAttribute('aria-invalid', 'true');
      errorEl.id = `${control.id || 'ctl'}-error`;
      const described = (control.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && x !== errorEl.id);
      control.setAttribute('aria-describedby', [errorEl.id, ...described].join(' '));
    }
    // For a group container, put the message at its top, where it is seen.
    if (wrapper === control) wrapper.after(errorEl);
    else if (wrapper.classList.contains('field')) wrapper.append(errorEl);
    else wrapper.prepend(errorEl);
    return true;
  }
  const slot = form.querySelector('[data-form-errors]');
  if (slot) slot.append(errorEl);
  return false;
}

/**
 * Show an ApiError on a form: a 422 at its field, anything else in the form-level
 * slot. Focuses the first invalid control so keyboard users land on it.
 */
export function showApiError(form, err, aliases) {
  clearErrors(form);
  const details = (err && err.details) || {};
  const field = details.field || details.path || null;
  const message = err.message || 'Request failed';
  if (Array.isArray(details.errors)) {
    // Tolerate a list of {field, message} too.
    details.errors.forEach((e) => showFieldError(form, e.field, e.message || message, aliases));
  } else {
    showFieldError(form, field, message, aliases);
  }
  const first = form.querySelector('[aria-invalid="true"]') || form.querySelector('.field-error');
  if (first) {
    first.scrollIntoView({ block: 'center', behavior: 'smooth' });
    if (first.focus) first.focus({ preventScroll: true });
  }
}

/** A form-level error slot (for errors without a field). */
export function formErrors() {
  return h('div', { class: 'form-errors', 'data-form-errors': '', 'aria-live': 'assertive' });
}
