// The Mesh view: every node with its role, indexes, lag, state, version and last contact;
// the leader highlighted; the quorum. From /ha/status, polled and refetched on live changes.
import { html } from "../lib/html.js";
import { api } from "../lib/api.js";
import { usePoll } from "../lib/poll.js";
import { rememberNodes } from "../lib/nodes.js";

const POLL_MS = 2000; // leader changes are not log entries the feed carries: poll for them

async function fetchStatus() {
  const status = await api("GET", "/ha/status");
  rememberNodes(status);
  return status;
}

export default function MeshView() {
  const { data: status, error } = usePoll(fetchStatus, POLL_MS);
  return html`<section data-view="mesh">
    <h2>Mesh</h2>
    ${error ? html`<p class="error" data-error="form">${error.message}</p>` : null}
    ${status ? html`<${Summary} status=${status} /><${Nodes} status=${status} />` : null}
  </section>`;
}

function Summary({ status }) {
  const leader = status.leader?.name ?? null;
  return html`<dl class="summary" data-table="summary">
    <dt>Leader</dt><dd data-leader=${leader ?? ""}>${leader ?? "none"}</dd>
    <dt>Quorum</dt><dd data-quorum=${String(Boolean(status.has_quorum))}>${status.has_quorum ? "yes" : "NO"}</dd>
    <dt>Term</dt><dd>${status.term}</dd>
    <dt>Commit index</dt><dd>${status.commit_index}</dd>
    <dt>This node</dt><dd>${status.node_name}</dd>
  </dl>`;
}

function Nodes({ status }) {
  const leader = status.leader?.name ?? null;
  return html`<table data-table="nodes">
    <thead>
      <tr>
        <th>Node</th><th>Role</th><th>State</th><th>Ready</th><th>Applied</th><th>Lag</th>
        <th>Version</th><th>Last contact</th>
      </tr>
    </thead>
    <tbody>
      ${status.nodes.map(
        (n) => html`<tr
          data-row=${n.name ?? n.raft_address ?? ""}
          data-leader=${String(n.name !== null && n.name === leader)}
          class=${n.name !== null && n.name === leader ? "leader" : ""}
        >
          <td>${n.name ?? n.raft_address}</td>
          <td data-field="role">${n.role}</td>
          <td data-field="status">${n.status}</td>
          <td data-field="ready">${n.ready ? "ready" : "not ready"}</td>
          <td>${n.applied_index ?? "—"}</td>
          <td data-field="lag">${lag(n)}</td>
          <td>${n.version ?? "—"}</td>
          <td>${contact(n, status.node_name)}</td>
        </tr>`,
      )}
    </tbody>
  </table>`;
}

function lag(node) {
  if (typeof node.behind_by === "number") return node.caught_up ? `${node.behind_by} (caught up)` : String(node.behind_by);
  return "—";
}

function contact(node, self) {
  if (node.name === self) return "this node";
  if (typeof node.last_contact !== "number") return node.error ?? "—";
  const secs = Math.max(0, Date.now() / 1000 - node.last_contact);
  return `${secs.toFixed(1)} s ago`;
}
