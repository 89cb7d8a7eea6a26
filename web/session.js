// The page's session with the server: who is logged in, and the CSRF token every request that
// changes something carries (the server refuses a browser session's POST or DELETE without it).
// A page without a session goes to the login page and comes back.

let loaded = null;

/** Who is logged in: `{name, permissions, cameras, via, csrf}` (loaded once). */
export function currentSession() {
  loaded ??= load();
  return loaded;
}

async function load() {
  const response = await fetch('/api/session');
  if (response.status === 401) {
    toLogin();
    return new Promise(() => {}); // the page is going away
  }
  if (!response.ok) throw new Error(`session: ${response.status}`);
  return response.json();
}

/** Leaves for the login page, which returns here. */
export function toLogin() {
  const here = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

/** The headers of a request that changes something. */
export async function csrfHeaders() {
  const session = await currentSession();
  return session.csrf ? { 'X-CSRF-Token': session.csrf } : {};
}

export async function logout() {
  await fetch('/api/logout', { method: 'POST' });
  toLogin();
}
