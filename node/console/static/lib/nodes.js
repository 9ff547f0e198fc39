// The mesh's nodes as last seen in /ha/status: where to go when this node goes away.

let last = { self: null, nodes: [] };
const listeners = new Set();

// Keep the nodes of a /ha/status answer (name and http_url of each).
export function rememberNodes(status) {
  if (!status || !Array.isArray(status.nodes)) return;
  last = {
    self: typeof status.node_name === "string" ? status.node_name : null,
    nodes: status.nodes
      .filter((n) => typeof n.name === "string")
      .map((n) => ({ name: n.name, url: safeHttpUrl(n.http_url) })),
  };
  for (const fn of [...listeners]) fn(last);
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
