// Fetch wrapper for the Samplit HTTP API (/api/v1, same origin).
// - adds the Bearer token kept in sessionStorage (gone when the tab closes),
// - turns every non-2xx answer into an ApiError carrying the API's
//   {error: {code, message, details}} so views can show it (never swallow it),
// - on a 401 for an authenticated call, forgets the token and tells the app,
//   which sends the user back to the login page.

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

/**
 * request('GET', '/experiments', {query, body, signal, auth})
 * Resolves with the parsed JSON (or null for 204), rejects with ApiError.
 */
export async function request(method, path, { query, body, signal, auth = true } = {}) {
  let url = BASE + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;
  }
  const headers = { Accept: 'application/json' };
  const token = auth ? getToken() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';

  let res;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, credentials: 'same-origin' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', 'The server could not be reached. Is Samplit running?');
  }

  if (!res.ok) {
    const error = await toError(res, method, path);
    // A 401 on an authenticated call means the session is gone (expired, revoked, or
    // the server's key changed). Public calls (login, simulate) handle 401 themselves.
    if (res.status === 401 && token) {
      clearToken();
      error.sessionEnded = true; // the app announces this once; views need not
      window.dispatchEvent(new CustomEvent('samplit:unauthorized', { detail: error }));
    }
    throw error;
  }
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  if (!type.includes('json')) return null;
  return res.json();
}

export const api = {
  get: (path, opts) => request('GET', path, opts),
  post: (path, body, opts) => request('POST', path, { ...opts, body }),
  patch: (path, body, opts) => request('PATCH', path, { ...opts, body }),
  del: (path, opts) => request('DELETE', path, opts),
};

export function isAbort(err) {
  return err && err.name === 'AbortError';
}
