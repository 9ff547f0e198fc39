// Calls to the node's API: same origin, the session's bearer token, JSON in and out,
// a 10 s deadline. A non-2xx answer throws ApiError with the node's own message.
import { getSession, clearSession, sessionEpoch } from "./session.js";

export const TIMEOUT_MS = 10000;
export const SESSION_ENDED = "Your session expired or was revoked: sign in again.";
export const STALE = "session_ended"; // the code of an answer whose session ended meanwhile
const MAX_MESSAGE = 500; // a message longer than this is cut (a hostile or broken answer)

export class ApiError extends Error {
  constructor(status, message, code = null, field = null) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: no answer (network, timeout)
    this.code = code;
    this.field = field;
  }
}

// A call with the session's token. An answer that comes after its session ended (signed
// out, or another user signed in) is dropped: it throws ApiError(0) with code STALE, and
// its 401 does not sign the next session out.
export async function api(method, path, body) {
  const session = getSession();
  const asked = sessionEpoch();
  const stale = () => new ApiError(0, `${method} ${path}: the session ended before the answer came`, STALE);
  try {
    const { data } = await request("", session?.token ?? null, method, path, body);
    if (sessionEpoch() !== asked) throw stale();
    return data;
  } catch (e) {
    if (sessionEpoch() !== asked) throw e.code === STALE ? e : stale();
    // Only while that token is still the session's: a call sent just before the session's
    // own key was rotated (and the session took the new one) must not end it.
    const current = session !== null && getSession()?.token === session.token;
    if (e instanceof ApiError && e.status === 401 && current) clearSession(SESSION_ENDED);
    throw e;
  }
}

// Another node's read-only status (may fail: CORS, or the node is down).
export async function apiAt(baseUrl, method, path, body) {
  const base = String(baseUrl).replace(/\/+$/, "");
  return (await request(base, getSession()?.token ?? null, method, path, body)).data;
}

// A call with a credential that is not (yet) the session's: sign-in checks it first.
// {data, nodeNow}: the answer and the node's time of it (its Date header, in seconds).
export async function apiAs(token, method, path, body) {
  return request("", token, method, path, body);
}

async function request(base, token, method, path, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  let resp;
  try {
    resp = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: abort.signal,
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
      referrerPolicy: "no-referrer",
    });
  } catch (e) {
    const why = abort.signal.aborted ? `no answer within ${TIMEOUT_MS / 1000} s` : "the node did not answer";
    throw new ApiError(0, `${method} ${path}: ${why}`, "unreachable");
  } finally {
    clearTimeout(timer);
  }
  const data = await decoded(resp);
  if (resp.ok) return { data, nodeNow: nodeTime(resp) };
  throw failure(resp.status, data, body);
}

function nodeTime(resp) {
  const ms = Date.parse(resp.headers.get("Date") ?? "");
  return Number.isFinite(ms) ? ms / 1000 : null;
}

async function decoded(resp) {
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: { message: text.slice(0, MAX_MESSAGE) } };
  }
}

// Both envelopes: {"error": {"message", "type", "code", "param"}} and the management
// API's {"error": "text", "details": "field X", "code"}.
function failure(status, data, body) {
  const error = data?.error;
  let message, code, param;
  if (error !== null && typeof error === "object") {
    ({ message, code, param } = error);
  } else {
    message = error;
    code = data?.code;
    const details = typeof data?.details === "string" ? data.details.match(/^field (\S+)$/) : null;
    param = details ? details[1] : null;
  }
  message = typeof message === "string" && message ? message.slice(0, MAX_MESSAGE) : `HTTP ${status}`;
  const field = typeof param === "string" && param ? param : quotedField(message, body);
  return new ApiError(status, message, typeof code === "string" ? code : null, field);
}

// The form's field the message quotes ('name', "name" or `name`), if it quotes one.
function quotedField(message, body) {
  if (body === null || typeof body !== "object") return null;
  for (const name of Object.keys(body)) {
    for (const q of ["'", '"', "`"]) if (message.includes(q + name + q)) return name;
  }
  return null;
}
