// The admin API, read with the token the user gave. Same origin only: paths, never URLs.
//
// The token lives in sessionStorage (this tab, until it closes) and goes out only as the
// Bearer header of these requests. A 401 forgets it and tells the app to ask again.

const TOKEN_KEY = 'switchyard.console.token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An admin API error: the HTTP status and the API's own message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** `params` as a query string, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && String(value).trim() !== '') {
      q.set(name, String(value).trim());
    }
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** GETs an admin API path (`/admin/...`) with `params`; resolves to its JSON body. */
export async function get(path, params) {
  let response;
  try {
    response = await fetch(path + query(params), {
      headers: { Authorization: `Bearer ${token.get()}`, Accept: 'application/json' },
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'the control plane did not answer');
  }
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    token.clear();
    window.dispatchEvent(new CustomEvent('console:unauthorized'));
  }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new ApiError(response.status, message || `HTTP ${response.status}`);
  }
  return body;
}

let teams = null;

/** Team id → name, for the teams this token can see (loaded once per sign-in). */
export async function teamNames() {
  if (!teams) {
    teams = get('/admin/teams', { limit: 1000 })
      .then((page) => new Map(page.data.map((t) => [t.id, t.name])))
      .catch(() => new Map());
  }
  return teams;
}

/** Forgets what was loaded with the previous token. */
export function forget() {
  teams = null;
}
