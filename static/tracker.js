/* Samplit tracker. Served by /t/SITE_KEY.js after window.__samplit = {endpoint, siteKey,
   hide, timeout}, or alone: <script src="https://HOST/tracker.js" data-site-key="KEY">. */
(() => {
  'use strict';
  if (window.samplit && window.samplit.userId) return; // included twice

  const doc = document, cfg = window.__samplit || {}, me = doc.currentScript;
  const TEXT = 'text/plain;charset=UTF-8'; // no CORS preflight
  const MARK = 'data-samplit';             // set once an element's variant is applied
  const hidden = new Set(cfg.hide || []);  // selectors still hidden
  const style = doc.createElement('style');
  const waiters = [], sent = new Set();    // sent: "experiment goal" this page
  let list = null;     // this page's assignments
  let variants = null; // [{sel, c: content, done: WeakSet}]
  let goals = {};      // experiment_id -> [goal, time], all this visitor's experiments
  let leaving = false; // redirecting
  let endpoint = '', siteKey = '', uid = '', LS = null;

  // Our errors never reach the host page.
  const guard = fn => (...a) => { try { return fn(...a) } catch (e) {} };
  const each = (obj, fn) => Object.keys(obj || {}).forEach(guard(k => fn(k, obj[k])));
  const noop = () => {};
  const post = (path, body, keepalive) => fetch(`${endpoint}/api/v1/tracker/${path}`,
    { method: 'POST', body, headers: { 'Content-Type': TEXT }, credentials: 'omit', keepalive });

  // ---- anti-flicker: hide only the elements under test; each shows once it carries MARK
  const paint = () => {
    style.textContent = Array.from(hidden, s => `:is(${s}):not([${MARK}]){visibility:hidden!important}`).join('\n');
  };
  const reveal = sel => { sel ? hidden.delete(sel) : hidden.clear(); paint() };
  // Once parsed, show all (the observer handles later elements before they paint);
  // while parsing, keep hiding the selectors this visitor has variants for.
  const settle = () => {
    if (!variants || leaving) return;
    const parsing = doc.readyState == 'loading';
    hidden.forEach(s => { if (!parsing || !variants.some(v => v.sel == s)) reveal(s) });
  };

  // ---- storage: localStorage, else a cookie
  const load = k => {
    try {
      const m = doc.cookie.match(`(?:^|; )${k}=([^;]*)`);
      return (LS && LS.getItem(k)) || (m && decodeURIComponent(m[1]));
    } catch (e) {}
  };
  const save = (k, v, lsOnly) => {
    try { if (LS) return LS.setItem(k, v) } catch (e) {}
    try { if (!lsOnly) doc.cookie = `${k}=${encodeURIComponent(v)};max-age=31536000;path=/;SameSite=Lax` } catch (e) {}
  };
  const newId = () => {
    let b = new Uint8Array(16);
    try { crypto.getRandomValues(b) } catch (e) { b = b.map(() => Math.random() * 256) }
    return Array.from(b, x => (x + 256).toString(16).slice(1)).join('');
  };

  // ---- applying variants
  const OPS = [ // content keys, in the order they apply
    ['text', (el, x) => { el.textContent = x }],
    ['html', (el, x) => { el.innerHTML = x }],
    ['attributes', (el, x) => each(x, (k, v) => v == null ? el.removeAttribute(k) : el.setAttribute(k, v))],
    ['style', (el, x) => each(x, (k, v) => {
      const imp = /\s*!important\s*$/i;
      el.style.setProperty(k, String(v).replace(imp, ''), imp.test(v) ? 'important' : '');
    })],
    ['add_class', (el, x) => el.classList.add(...[].concat(x))],
    ['remove_class', (el, x) => el.classList.remove(...[].concat(x))],
    ['hide', (el, x) => x && el.style.setProperty('display', 'none', 'important')]
  ];
  // Elements matching sel in root, root included; an invalid selector matches nothing.
  const find = (root, sel) => {
    try {
      const els = Array.from(root.querySelectorAll(sel));
      if (root.matches && root.matches(sel)) els.unshift(root);
      return els;
    } catch (e) { return [] }
  };
  // While parsing, an element may lack its children yet; it is complete once it or an
  // ancestor has a next sibling.
  const complete = el => {
    if (doc.readyState != 'loading') return true;
    for (; el; el = el.parentNode) if (el.nextSibling) return true;
  };
  // html containing its own selector must not nest forever
  const inside = (v, el) => {
    for (let p = el.parentNode; p; p = p.parentNode) if (v.done.has(p)) return true;
  };
  const apply = (v, el) => {
    if (v.done.has(el) || !complete(el)) return;
    v.done.add(el);
    if (v.c.html == null || !inside(v, el)) OPS.forEach(([k, op]) => { if (v.c[k] != null) guard(op)(el, v.c[k]) });
    el.setAttribute(MARK, '');
  };
  const applyIn = root => variants.forEach(v => find(root, v.sel).forEach(el => apply(v, el)));
  const mutated = records => {
    if (doc.readyState == 'loading') applyIn(doc); // elements completed since
    else records.forEach(r => r.addedNodes.forEach(n => n.nodeType == 1 && applyIn(n)));
    settle();
  };
  const redirect = url => {
    const to = new URL(url, location.href).href;
    if (leaving || to == location.href) return;
    leaving = true;
    location.replace(to);
  };

  // ---- the assignments arrive (data null: the request failed)
  const start = data => {
    list = data && Array.isArray(data.assignments) ? data.assignments : [];
    variants = [];
    if (!data) reveal();
    list.forEach(guard(a => {
      if (a.excluded) return void delete goals[a.experiment_id];
      goals[a.experiment_id] = [a.goal || null, Date.now()];
      (a.variants || []).forEach(v => {
        const c = v.content || {};
        if (c.redirect) guard(redirect)(c.redirect); // page-wide: no element needed
        if (v.selector) variants.push({ sel: v.selector, c, done: new WeakSet() });
      });
    }));
    save('samplit_goals', JSON.stringify(goals), true);
    if (variants.length) {
      applyIn(doc);
      new MutationObserver(guard(mutated)).observe(doc, { childList: true, subtree: true });
    }
    settle();
    guard(watchGoals)();
    waiters.splice(0).forEach(f => f(list));
  };

  // ---- goals and conversions
  const urlMatch = (pattern, url) => // "*" matches any run of characters; whole URL
    new RegExp('^' + String(pattern).split('*')
      .map(s => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$').test(url);
  const watchGoals = () => {
    each(goals, (id, [g]) => {
      if (g && g.type == 'pageview' && g.url && urlMatch(g.url, location.href)) send(id, 'pageview');
    });
    // Capture phase: seen even if the page stops the event; a click inside counts.
    doc.addEventListener('click', guard(e => {
      const t = e.target.nodeType == 1 ? e.target : e.target.parentElement;
      each(goals, (id, [g]) => {
        if (t && g && g.type == 'click' && g.selector && t.closest(g.selector)) send(id, 'click');
      });
    }), true);
  };
  const send = (id, goal, value) => {
    const key = id + ' ' + goal;
    if (sent.has(key)) return;
    sent.add(key);
    const n = parseFloat(value), body = JSON.stringify({
      site_key: siteKey, experiment_id: id, user_id: uid,
      goal: goal == null ? undefined : String(goal), value: isFinite(n) ? n : undefined
    });
    // sendBeacon survives unload (a click on a link)
    try { if (navigator.sendBeacon(`${endpoint}/api/v1/tracker/convert`, new Blob([body], { type: TEXT }))) return } catch (e) {}
    post('convert', body, true).catch(noop);
  };

  // ---- public API
  const ready = cb => new Promise(resolve => {
    const f = l => {
      if (typeof cb == 'function') try { cb(l) } catch (e) { setTimeout(() => { throw e }) } // the caller's bug
      resolve(l);
    };
    list ? f(list) : waiters.push(f);
  });
  // convert("signup", 9.99): experiments whose goal is custom "signup"; convert(): all of them.
  const convert = (goal, value) => ready().then(guard(() => each(goals, (id, [g]) => {
    if (goal == null || (g && g.type == 'custom' && g.name == goal)) send(id, goal, value);
  })));
  window.samplit = {
    ready,
    convert,
    userId: () => uid
  };

  // ---- boot
  try {
    paint();
    (doc.head || doc.documentElement).appendChild(style);
    setTimeout(guard(() => reveal()), cfg.timeout >= 0 ? cfg.timeout : 1500); // never stuck hidden

    try { LS = localStorage; LS.setItem('samplit_t', '1'); LS.removeItem('samplit_t') } catch (e) { LS = null }
    uid = load('samplit_uid');
    if (!uid || !/^[\w-]{1,128}$/.test(uid)) uid = newId();
    save('samplit_uid', uid); // also renews the cookie's year
    // Goals met on earlier pages: a thank-you page outside target_url converts too.
    try { each(JSON.parse(load('samplit_goals')), (id, g) => { if (Date.now() - g[1] < 30 * 864e5) goals[id] = g }) } catch (e) {}

    endpoint = (cfg.endpoint || (me && me.src ? new URL(me.src).origin : '')).replace(/\/+$/, '');
    siteKey = cfg.siteKey || (me && me.getAttribute('data-site-key')) || '';
    doc.addEventListener('DOMContentLoaded', guard(() => { if (variants) { applyIn(doc); settle() } }));
    if (!siteKey) return start(null);
    post('assign', JSON.stringify({ site_key: siteKey, user_id: uid, url: location.href }))
      .then(r => r.ok ? r.json() : null)
      .catch(noop)
      .then(guard(start));
  } catch (e) {
    guard(reveal)();
    if (!list) guard(start)(null);
  }
})();
