// The console's shell: sign-in, the navigation from VIEWS, routing by location.hash
// (#/mesh, #/workers, ...), who is signed in, the live indicator and the lost-node banner.
import { html, render, useState, useEffect } from "./lib/html.js";
import { api } from "./lib/api.js";
import { getSession, onSessionChange, clearSession } from "./lib/session.js";
import { liveState, onLiveState, startLive, subscribe } from "./lib/live.js";
import { rememberNodes } from "./lib/nodes.js";
import { VIEWS } from "./views/index.js";
import { SignIn } from "./signin.js";
import { NodeBanner } from "./banner.js";

const EXPIRED = "Your session expired: sign in again.";
const MAX_TIMER_MS = 2 ** 31 - 1;
const LIVE_WORDS = { open: "live", connecting: "connecting…", closed: "offline" };

function useSession() {
  const [session, setSession] = useState(getSession());
  useEffect(() => onSessionChange(setSession), []);
  return session;
}

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

function useLiveState() {
  const [state, setState] = useState(liveState());
  useEffect(() => {
    // The socket may have changed state between the render and this effect (it often
    // opens in that gap): without this the indicator stayed "connecting" on a live feed.
    setState(liveState());
    return onLiveState(setState);
  }, []);
  return state;
}

// Back to sign-in when the session's own expiry comes (the API would refuse it anyway).
// Timed on this browser's clock from the lifetime the node gave (ends_at): the two clocks
// may be hours apart. A 401 stays the authority either way.
function useExpiry(session) {
  useEffect(() => {
    if (!session?.ends_at) return undefined;
    const ms = session.ends_at * 1000 - Date.now();
    if (ms <= 0) {
      clearSession(EXPIRED);
      return undefined;
    }
    const timer = setTimeout(() => clearSession(EXPIRED), Math.min(ms, MAX_TIMER_MS));
    return () => clearTimeout(timer);
  }, [session?.token]);
}

// Admins: the mesh's node URLs, kept for the lost-node banner (tenant users may not read them).
function useKnownNodes(session) {
  useEffect(() => {
    if (!session?.admin) return undefined;
    const fetchNodes = () => api("GET", "/ha/status").then(rememberNodes, () => {});
    fetchNodes();
    return subscribe((event) => event.type === "resync" && fetchNodes());
  }, [session?.token]);
}

export function offeredViews(session) {
  return VIEWS.filter((view) => session.admin || !view.admin);
}

function App() {
  const session = useSession();
  useExpiry(session);
  useKnownNodes(session);
  return session ? html`<${Shell} session=${session} />` : html`<${SignIn} />`;
}

function Shell({ session }) {
  const hash = useHash();
  const live = useLiveState();
  const views = offeredViews(session);
  const wanted = hash.replace(/^#\/?/, "").split("/")[0];
  const view = views.find((v) => v.id === wanted) ?? views[0] ?? null;
  return html`<div class="shell">
    <header>
      <span class="brand">meshgate</span>
      <nav>
        ${views.map(
          (v) => html`<a href=${`#/${v.id}`} data-nav=${v.id} class=${v === view ? "active" : ""}>${v.title}</a>`,
        )}
      </nav>
      <span class="who" data-who="">
        ${session.name} · ${session.admin ? "admin" : `tenant ${session.tenant}`}
      </span>
      <span class="live" data-live=${live}>${LIVE_WORDS[live]}</span>
      <button type="button" data-action="signout" onClick=${() => clearSession("You signed out.")}>
        Sign out
      </button>
    </header>
    <${NodeBanner} />
    <main>
      ${view
        ? html`<${ViewHost} key=${view.id} view=${view} session=${session} />`
        : html`<p>No view is open to this account.</p>`}
    </main>
  </div>`;
}

const loaded = new Map(); // view id -> its component, once imported

function ViewHost({ view, session }) {
  const [Component, setComponent] = useState(() => loaded.get(view.id) ?? null);
  const [failed, setFailed] = useState(null);
  useEffect(() => {
    if (Component) return;
    view.load().then(
      (module) => {
        loaded.set(view.id, module.default);
        setComponent(() => module.default);
      },
      (e) => setFailed(String(e)),
    );
  }, [view.id]);
  if (failed) return html`<p class="error" data-error="view">Could not load this view: ${failed}</p>`;
  if (!Component) return html`<p class="loading">Loading…</p>`;
  return html`<${Component} session=${session} />`;
}

startLive();
render(html`<${App} />`, document.getElementById("app"));
