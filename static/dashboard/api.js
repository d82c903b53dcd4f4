// Fetch wrapper for the Samplit HTTP API (/api/v1, same origin).
// - adds the Bearer token kept in sessionStorage (gone when the tab closes),
// - turns every non-2xx answer into an ApiError carrying the API's
//   {error: {code, message, details}} so views can show it (never swallow it),
// - on a 401 for an authenticated call, forgets the token and tells the app,
//   which sends the user back to the login page.
// download() fetches a file the same way and saves it (a plain link cannot send the token).

const BASE = '/api/v1';
const TOKEN_KEY = 'samplit.token';
const EXPIRY_KEY = 'samplit.token_expires';

export class ApiError extends Error {
  constructor(status, code, message, details, retryAfter) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.retryAfter = retryAfter;
  }
}

export function getToken() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const expires = Number(sessionStorage.getItem(EXPIRY_KEY) || 0);
  if (token && expires && Date.now() > expires) {
    clearToken();
    return null;
  }
  return token;
}

export function setToken(token, expiresIn) {
  sessionStorage.setItem(TOKEN_KEY, token);
  if (expiresIn) sessionStorage.setItem(EXPIRY_KEY, String(Date.now() + expiresIn * 1000));
  else sessionStorage.removeItem(EXPIRY_KEY);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(EXPIRY_KEY);
}

const STATUS_TEXT = {
  400: 'Bad request', 401: 'Not signed in', 403: 'Forbidden', 404: 'Not found',
  409: 'Conflict', 413: 'Request too large', 422: 'Invalid input', 429: 'Too many requests',
  500: 'Server error', 502: 'Bad gateway', 503: 'Service unavailable',
};

async function toError(res, method, path) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON (e.g. an endpoint an older server does not have yet): fall through.
  }
  const retryAfter = Number(res.headers.get('Retry-After')) || undefined;
  const e = body && body.error;
  if (e && typeof e === 'object') {
    return new ApiError(res.status, e.code || `HTTP_${res.status}`, e.message || STATUS_TEXT[res.status] || 'Request failed', e.details, retryAfter);
  }
  const text = STATUS_TEXT[res.status] || `HTTP ${res.status}`;
  return new ApiError(res.status, `HTTP_${res.status}`, `${text}: ${method} ${BASE}${path}`, {}, retryAfter);
}

function urlFor(path, query) {
  let url = BASE + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;
  }
  return url;
}

async function send(url, init) {
  try {
    return await fetch(url, { ...init, credentials: 'same-origin' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', 'The server could not be reached. Is Samplit running?');
  }
}

/** The ApiError for a non-2xx answer; a 401 with a token also ends the session. */
async function failure(res, method, path, token) {
  const error = await toError(res, method, path);
  // A 401 on an authenticated call means the session is gone (expired, revoked, or
  // the server's key changed). Public calls (login, simulate) handle 401 themselves.
  if (res.status === 401 && token) {
    clearToken();
    error.sessionEnded = true; // the app announces this once; views need not
    window.dispatchEvent(new CustomEvent('samplit:unauthorized', { detail: error }));
  }
  return error;
}

/**
 * request('GET', '/experiments', {query, body, signal, auth})
 * Resolves with the parsed JSON (or null for 204), rejects with ApiError.
 */
export async function request(method, path, { query, body, signal, auth = true } = {}) {
  const url = urlFor(path, query);
  const headers = { Accept: 'application/json' };
  const token = auth ? getToken() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';

  const res = await send(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  if (!res.ok) throw await failure(res, method, path, token);
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  if (!type.includes('json')) return null;
  return res.json();
}

/**
 * The file name a Content-Disposition header gives (RFC 6266: `filename*=UTF-8''…` wins
 * over `filename="…"`), reduced to a plain name; `fallback` when there is none.
 */
export function dispositionName(header, fallback) {
  let name = '';
  const star = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header || '');
  if (star) {
    try { name = decodeURIComponent(star[2].trim()); } catch { name = ''; }
  }
  if (!name) {
    const plain = /filename\s*=\s*(?:"((?:\\.|[^"\\])*)"|([^;]+))/i.exec(header || '');
    if (plain) name = plain[1] !== undefined ? plain[1].replace(/\\(.)/g, '$1') : plain[2].trim();
  }
  // Never a path: keep the last segment, without control characters.
  name = name.split(/[/\\]/).pop().replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return name && name !== '.' && name !== '..' ? name : fallback;
}

/**
 * download('/experiments/ID/export', {format: 'csv'}, 'experiment.csv', {signal})
 * GETs a file with the session's token (a plain link could not send it) and hands it to
 * the browser as a download, named by the answer's Content-Disposition (else
 * `fallbackName`). Resolves with {name, size, type}; rejects with ApiError like request().
 */
export async function download(path, query, fallbackName, { signal } = {}) {
  const url = urlFor(path, query);
  const token = getToken();
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await send(url, { method: 'GET', headers, signal });
  if (!res.ok) throw await failure(res, 'GET', path, token);
  let blob;
  try {
    blob = await res.blob();
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    // The export is streamed: a failure after the first bytes can only cut the body short.
    throw new ApiError(0, 'DOWNLOAD_INTERRUPTED', 'The download was cut short. Please try again.');
  }
  const name = dispositionName(res.headers.get('Content-Disposition'), fallbackName);
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  try {
    a.click();
  } finally {
    a.remove();
    // The browser reads the blob after this task; revoking at once can lose the file.
    setTimeout(() => URL.revokeObjectURL(href), 30000);
  }
  return { name, size: blob.size, type: blob.type };
}

export const api = {
  get: (path, opts) => request('GET', path, opts),
  post: (path, body, opts) => request('POST', path, { ...opts, body }),
  patch: (path, body, opts) => request('PATCH', path, { ...opts, body }),
  del: (path, opts) => request('DELETE', path, opts),
};

/**
 * The server's input limits and the variant content keys (GET /meta/limits, from the
 * Rust model: one source). Filled once by `loadLimits()` before the first page renders.
 */
export const limits = {};

export async function loadLimits() {
  Object.assign(limits, await request('GET', '/meta/limits', { auth: false }));
}

export function isAbort(err) {
  return err && err.name === 'AbortError';
}
