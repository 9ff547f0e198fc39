// One WebSocket to /ws per page, for the live change feed. The token goes in the
// subprotocol (`bearer.<token>`), never in the URL. The socket follows the session: it
// opens on sign-in, closes on sign-out, and reconnects with backoff when it drops; after
// a reconnect (or a `reset` event) subscribers get {type: "resync"} so views refetch.
import { getSession, onSessionChange } from "./session.js";

const PING_MS = 20000;
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10000;
const MAX_EVENT_CHARS = 1_000_000; // an event larger than this is dropped, not parsed

const subscribers = new Set();
const stateListeners = new Set();
let state = "closed";
let socket = null;
let pinger = null;
let retry = null;
let backoff = FIRST_RETRY_MS;
let opened = false; // has a socket of this session opened before (a reopen is a resync)

// fn(event) for each event (hello, change, reset, resync); returns the unsubscribe function.
export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

export function liveState() {
  return state;
}

export function onLiveState(fn) {
  stateListeners.add(fn);
  return () => stateListeners.delete(fn);
}

// Called once by the shell: from now on the socket follows the session.
export function startLive() {
  onSessionChange((s) => (s ? restart() : stop()));
  if (getSession()) restart();
}

function restart() {
  stop();
  opened = false;
  connect();
}

function stop() {
  clearTimeout(retry);
  clearInterval(pinger);
  retry = pinger = null;
  if (socket) {
    const s = socket;
    socket = null;
    s.onopen = s.onmessage = s.onclose = s.onerror = null;
    s.close(1000);
  }
  backoff = FIRST_RETRY_MS;
  setState("closed");
}

function connect() {
  const session = getSession();
  if (!session) return;
  setState("connecting");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let ws;
  try {
    ws = new WebSocket(`${scheme}://${location.host}/ws`, [`bearer.${session.token}`]);
  } catch {
    // A token that is not a valid subprotocol name cannot be sent but in the URL, which
    // it must never be: no live feed for it (the views still poll).
    setState("closed");
    return;
  }
  socket = ws;
  ws.onopen = () => {
    backoff = FIRST_RETRY_MS;
    setState("open");
    pinger = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('{"type":"ping"}'), PING_MS);
    if (opened) deliver({ type: "resync" });
    opened = true;
  };
  ws.onmessage = (msg) => {
    if (typeof msg.data !== "string" || msg.data.length > MAX_EVENT_CHARS) return;
    let event;
    try {
      event = JSON.parse(msg.data);
    } catch {
      return;
    }
    if (event === null || typeof event !== "object" || event.type === "pong") return;
    deliver(event);
    if (event.type === "reset") deliver({ type: "resync" });
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    clearInterval(pinger);
    pinger = null;
    scheduleRetry();
  };
}

function scheduleRetry() {
  setState("closed");
  if (!getSession()) return;
  retry = setTimeout(connect, backoff);
  backoff = Math.min(backoff * 2, MAX_RETRY_MS);
}

function deliver(event) {
  for (const fn of [...subscribers]) {
    try {
      fn(event);
    } catch (e) {
      console.error("a live-feed subscriber failed", e);
    }
  }
}

function setState(next) {
  if (next === state) return;
  state = next;
  for (const fn of [...stateListeners]) fn(next);
}
