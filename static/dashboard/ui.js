// Shared UI pieces: toasts, the modal <dialog>, clipboard copy, status badges.
import { h, describeError } from './dom.js';

function toastRegion() {
  let region = document.getElementById('toasts');
  if (!region) {
    region = h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite' });
    document.body.append(region);
  }
  return region;
}

/** A short-lived message. Errors stay longer and are announced assertively. */
export function toast(message, kind = 'info') {
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, '×');
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': `toast-${kind}` },
    h('span', null, message), close);
  const remove = () => el.remove();
  close.addEventListener('click', remove);
  toastRegion().append(el);
  setTimeout(remove, kind === 'error' ? 10000 : 4000);
  return el;
}

/** Remove every toast (e.g. "You are logged out." once the user is signed in again). */
export function clearToasts() {
  const region = document.getElementById('toasts');
  if (region) region.replaceChildren();
}

/** Show an API (or any) error as a toast; the single place errors surface. */
export function showError(err, prefix) {
  if (err && err.name === 'AbortError') return;
  if (err && err.sessionEnded) return; // already announced, and the login page is shown
  toast(prefix ? `${prefix}: ${describeError(err)}` : describeError(err), 'error');
}

/**
 * Modal confirmation built on <dialog>. `body` may hold extra form controls;
 * `collect()` reads them when the user confirms. Resolves to the collected value
 * (or true), or to null when cancelled (button, Escape, backdrop).
 */
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false, body = null, collect = null }) {
  return new Promise((resolve) => {
    const cancelBtn = h('button', { type: 'button', class: 'btn', 'data-testid': 'dialog-cancel' }, 'Cancel');
    const okBtn = h('button', { type: 'submit', class: ['btn', danger ? 'btn-danger' : 'btn-primary'], 'data-testid': 'dialog-confirm' }, confirmLabel);
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const form = h('form', { method: 'dialog', class: 'dialog-form' },
      h('h2', { id: titleId }, title),
      message ? h('p', null, message) : null,
      body,
      h('div', { class: 'dialog-actions' }, cancelBtn, okBtn));
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId, 'data-testid': 'confirm-dialog' }, form);
    let result = null;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      result = collect ? collect() : true;
      dialog.close();
    });
    cancelBtn.addEventListener('click', () => dialog.close());
    // A click on the backdrop (outside the form) cancels.
    dialog.addEventListener('click', (ev) => { if (ev.target === dialog) dialog.close(); });
    dialog.addEventListener('close', () => { dialog.remove(); resolve(result); });
    document.body.append(dialog);
    dialog.showModal();
    okBtn.focus();
  });
}

/** Copy text; falls back to a hidden textarea + execCommand for non-secure origins. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission denied or unfocused document: try the fallback below.
    }
  }
  const ta = h('textarea', { class: 'visually-hidden', readonly: true, 'aria-hidden': 'true' });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  return ok;
}

/** A "Copy" button bound to a text getter; tells the user what happened. */
export function copyButton(getText, { label = 'Copy', testid = 'copy-button', selectOnFail = null } = {}) {
  const btn = h('button', { type: 'button', class: 'btn', 'data-testid': testid }, label);
  btn.addEventListener('click', async () => {
    const ok = await copyText(getText());
    if (ok) {
      btn.textContent = 'Copied ✓';
      toast('Copied to the clipboard', 'success');
      setTimeout(() => { btn.textContent = label; }, 2000);
    } else {
      if (selectOnFail) selectOnFail();
      toast('Copy is blocked by the browser — the text is selected, press Ctrl+C (⌘C).', 'error');
    }
  });
  return btn;
}

export function statusBadge(status) {
  return h('span', { class: `badge badge-${status || 'unknown'}`, 'data-testid': 'status-badge' }, status || 'unknown');
}

/** Select the full content of an element (for manual copy). */
export function selectContents(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}
