// The signed-in session, kept in sessionStorage only (never a cookie, never the URL): it
// lives as long as the tab and is sent by lib/api.js as a bearer token.
//   {token, kind: "admin"|"key"|"idp", name, tenant|null, admin: bool, expires_at|null,
//    ends_at|null}
// expires_at is the node's word, in seconds since the epoch (as a JWT's exp); ends_at is
// the same moment on this browser's clock (its lifetime as the node measured it, counted
// from sign-in), which may be hours off the node's.

const KEY = "meshgate.session";
const KINDS = ["admin", "key", "idp"];
const listeners = new Set();
let message = null; // why the sign-in shows (the last clearSession's reason)
let epoch = 0; // counts session changes: an answer asked in an earlier one is stale

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
    ends_at: typeof s.ends_at === "number" ? s.ends_at : null,
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

// Add a line to the sign-in's message (a listener of the session change that ended a run).
export function addSignInNote(note) {
  message = message ? `${message} ${note}` : note;
}

// The session change count: compare it before and after a call to tell a stale answer.
export function sessionEpoch() {
  return epoch;
}

// `expires_at` (the node's clock) on this browser's clock, from the node's time of the
// answer that told it (its Date header, in seconds); null if either is unknown.
export function localExpiry(expiresAt, nodeNow) {
  if (typeof expiresAt !== "number" || typeof nodeNow !== "number") return null;
  return Date.now() / 1000 + (expiresAt - nodeNow);
}

// fn(session|null) on every sign-in and sign-out; returns the unsubscribe function.
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify() {
  epoch += 1;
  const s = getSession();
  for (const fn of [...listeners]) fn(s);
}
