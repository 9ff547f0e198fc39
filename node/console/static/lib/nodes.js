// The mesh's nodes as last seen in /ha/status: where to go when this node goes away.
// Forgotten on every session change: the next user (maybe a tenant's, who may not read
// /ha/status) must not see them. lib/api.js drops an answer of an ended session.
import { onSessionChange } from "./session.js";

const NONE = Object.freeze({ self: null, nodes: [] });
let last = NONE;
const listeners = new Set();

onSessionChange(() => told(NONE));

function told(nodes) {
  last = nodes;
  for (const fn of [...listeners]) fn(last);
}

// Keep the nodes of a /ha/status answer (name and http_url of each).
export function rememberNodes(status) {
  if (!status || !Array.isArray(status.nodes)) return;
  told({
    self: typeof status.node_name === "string" ? status.node_name : null,
    nodes: status.nodes
      .filter((n) => n !== null && typeof n === "object" && typeof n.name === "string")
      .map((n) => ({ name: n.name, url: safeHttpUrl(n.http_url) })),
  });
}

export function knownNodes() {
  return last;
}

export function onNodes(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// Only http(s) URLs become links (never javascript: or data:).
export function safeHttpUrl(value) {
  if (typeof value !== "string") return null;
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : null;
  } catch {
    return null;
  }
}
