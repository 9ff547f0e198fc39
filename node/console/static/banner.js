// The lost-node banner: when this page's node stops answering, say so within a few
// seconds and offer the other nodes' consoles (their http_url from the last /ha/status).
// A dropped socket on a node that still answers is not a lost node: the page asks the API,
// which signs a revoked session out.
import { html, useState, useEffect } from "./lib/html.js";
import { api } from "./lib/api.js";
import { liveState, onLiveState } from "./lib/live.js";
import { knownNodes, onNodes } from "./lib/nodes.js";

const CHECK_MS = 1500; // how long the socket may be down before the node is probed
const UP_CHECK_MS = 10000; // the node answers but the socket stays down: ask less often
const PROBE_TIMEOUT_MS = 2000;

async function nodeAnswers() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), PROBE_TIMEOUT_MS);
  try {
    const resp = await fetch("/liveness", { cache: "no-store", signal: abort.signal });
    return resp.status < 500;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export function NodeBanner() {
  const [lost, setLost] = useState(false);
  const [nodes, setNodes] = useState(knownNodes());
  useEffect(() => onNodes(setNodes), []);
  useEffect(() => {
    let timer = null;
    const check = async () => {
      if (liveState() === "open") return setLost(false);
      const up = await nodeAnswers();
      if (liveState() === "open") return setLost(false);
      setLost(!up);
      if (up) api("GET", "/api/whoami").catch(() => {}); // a 401 ends the session
      timer = setTimeout(check, up ? UP_CHECK_MS : CHECK_MS);
    };
    const changed = (state) => {
      clearTimeout(timer);
      if (state === "open") setLost(false);
      else timer = setTimeout(check, CHECK_MS);
    };
    changed(liveState());
    const off = onLiveState(changed);
    return () => {
      off();
      clearTimeout(timer);
    };
  }, []);
  if (!lost) return null;
  const others = nodes.nodes.filter((n) => n.name !== nodes.self && n.url);
  return html`<div class="banner" role="alert" data-banner="node-lost">
    <p>This node${nodes.self ? ` (${nodes.self})` : ""} is not answering; the page keeps trying.</p>
    ${others.length
      ? html`<p>Open the console on another node:
          ${others.map((n) => html` <a href=${`${n.url}/ui/`} data-node=${n.name} rel="noreferrer">${n.name}</a>`)}
        </p>`
      : null}
  </div>`;
}
