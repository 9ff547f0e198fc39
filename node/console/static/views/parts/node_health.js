// Each node's view of a worker's health (GET /ha/workers: health_by_node). Health,
// breakers and load are each node's own hot state, so nodes may disagree: a worker
// reachable from one node and not from another is what this view is for.
import { html } from "../../lib/html.js";

const verdict = (view) =>
  view.unknown !== undefined ? "unknown" : `${view.healthy ? "healthy" : "unhealthy"}/${view.status}/${view.circuit_breaker}`;

// "agree", "disagree" or "partial" (some node's view is unknown) over the nodes' views.
export function agreement(byNode) {
  const verdicts = Object.values(byNode || {}).map(verdict);
  const known = new Set(verdicts.filter((v) => v !== "unknown"));
  if (known.size > 1) return "disagree";
  return verdicts.includes("unknown") ? "partial" : "agree";
}

export function NodeHealth({ worker }) {
  const rows = Object.entries(worker.health_by_node || {}).sort(([a], [b]) => a.localeCompare(b));
  return html`
    <table class="subtable" data-table="health-by-node" data-worker=${worker.id}>
      <thead><tr><th>Node</th><th>Healthy</th><th>Status</th><th>Circuit</th><th>Load</th><th>Last error</th></tr></thead>
      <tbody>
        ${rows.map(([node, view]) =>
          view.unknown !== undefined
            ? html`<tr data-row=${node}><td>${node}</td><td colspan="5">unknown: ${view.unknown}</td></tr>`
            : html`<tr data-row=${node} class=${view.healthy ? "" : "bad"}>
                <td>${node}</td><td>${view.healthy ? "yes" : "no"}</td><td>${view.status}</td>
                <td>${view.circuit_breaker}</td><td>${view.load}</td><td>${view.last_error || ""}</td>
              </tr>`,
        )}
      </tbody>
    </table>
  `;
}
