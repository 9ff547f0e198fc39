// The signed-in session, kept in sessionStorage only (never a cookie, never the URL): it
// lives as long as the tab and is sent by lib/api.js as a bearer token.
//   {token, kind: "admin"|"key"|"idp", name, tenant|null, admin: bool, expires_at|null}
// expires_at is in seconds since the epoch (as a JWT's exp).

const KEY = "meshgate.session";
const KINDS = ["admin", "key", "idp"];
const listeners = new Set();
let message = null; // why the sign-in shows (the last clearSession's reason)

function valid(s) {
  return (
    s !== null &&
    typeof s === "object" &&
    typeof s.token === "string" &&
    s.token.length > 0 &&
    KINDS.includes(s.kind) &&
    typeof s.admin === "boolean"
  );
}

export function getSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    return valid(s) ? s : null;
  } catch {
    return null;
  }
}

export function setSession(s) {
  if (!valid(s)) throw new Error("not a session");
  const clean = {
    token: s.token,
    kind: s.kind,
    name: String(s.name ?? ""),
    tenant: s.tenant ?? null,
    admin: s.admin,
    expires_at: typeof s.expires_at === "number" ? s.expires_at : null,
  };
  sessionStorage.setItem(KEY, JSON.stringify(clean));
  message = null;
  notify();
}

// Back to sign-in, showing `reason` there (null: none).
export function clearSession(reason) {
  const had = getSession() !== null;
  sessionStorage.removeItem(KEY);
  message = reason ?? null;
  if (had || reason) notify();
}

export function signInMessage() {
  return message;
}

// fn(session|null) on every sign-in and sign-out; returns the unsubscribe function.
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify() {
  const s = getSession();
  for (const fn of [...listeners]) fn(s);
}
