// Workers (admin): every worker with its status, health, circuit, load, model, labels and
// priority as this node sees them, each node's view where the nodes disagree; add, edit,
// drain and remove (the last two behind a confirmation).
import { html, useState } from "../lib/html.js";
import { api } from "../lib/api.js";
import { useLiveData } from "./parts/live_data.js";
import { useConfirmed } from "./parts/confirmed.js";
import { WorkerForm } from "./parts/worker_form.js";
import { NodeHealth, agreement } from "./parts/node_health.js";
import { pairsText } from "./parts/values.js";

const HEALTH_POLL_MS = 2000; // health and load are hot state: no command announces them

async function loadWorkers() {
  const [local, mesh] = await Promise.all([api("GET", "/workers"), api("GET", "/ha/workers")]);
  const byNode = Object.fromEntries(mesh.workers.map((w) => [w.id, w.health_by_node]));
  return local.workers.map((w) => ({ ...w, health_by_node: byNode[w.id] || {} }));
}

function health(worker) {
  if (worker.status !== "ready") return worker.status;
  return worker.is_healthy ? "healthy" : "unhealthy";
}

function WorkerRow({ worker, onEdit, onAsk, expanded, onExpand }) {
  const agreed = agreement(worker.health_by_node);
  const path = `/workers/${encodeURIComponent(worker.id)}`;
  return html`
    <tr data-row=${worker.id} data-status=${worker.status}>
      <td class="mono">${worker.url}</td>
      <td>${worker.model_id || ""}</td>
      <td>${worker.worker_type}</td>
      <td>${worker.status}${worker.job_status?.message ? html`<div class="hint">${worker.job_status.message}</div>` : ""}</td>
      <td data-health=${health(worker)}>${health(worker)}</td>
      <td>${worker.circuit_breaker?.state || ""}</td>
      <td>${worker.load ?? ""}</td>
      <td>${pairsText(worker.labels)}</td>
      <td data-cell="priority">${worker.priority}</td>
      <td>
        <button type="button" class="link" data-action="nodes" data-agreement=${agreed} onClick=${onExpand}>
          ${agreed === "disagree" ? "nodes disagree" : agreed === "partial" ? "some unknown" : "all agree"}
        </button>
      </td>
      <td><div class="actions">
        <button type="button" data-action="edit" onClick=${() => onEdit(worker)}>Edit</button>
        ${worker.status !== "draining" &&
        html`<button type="button" class="danger" data-action="drain" onClick=${() =>
          onAsk(`Drain ${worker.url}? No node routes new requests to it again; it stays listed until removed.`, () =>
            api("POST", `${path}/drain`))}>Drain</button>`}
        <button type="button" class="danger" data-action="remove" onClick=${() =>
          onAsk(`Remove ${worker.url}? Every node stops routing to it, in-flight requests finish, then it is gone.`, () =>
            api("DELETE", path))}>Remove</button>
      </div></td>
    </tr>
    ${expanded && html`<tr class="detail"><td colspan="11"><${NodeHealth} worker=${worker} /></td></tr>`}
  `;
}

export default function View() {
  const { data, error, reload } = useLiveData(loadWorkers, ["worker"], HEALTH_POLL_MS);
  const [form, setForm] = useState(null); // null, "add", or the worker being edited
  const [open, setOpen] = useState({}); // worker id -> per-node view shown (once toggled)
  const { ask, dialog } = useConfirmed(reload);
  const done = () => {
    setForm(null);
    reload();
  };
  const workers = data || [];
  return html`
    <section data-view="workers">
      <header class="view-header">
        <h2>Workers</h2>
        <button type="button" data-action="add-worker" onClick=${() => setForm("add")}>Add a worker</button>
      </header>
      ${error && html`<p class="error" data-error="load">${error.message}</p>`}
      ${form && html`<${WorkerForm} key=${form === "add" ? "add" : form.id} worker=${form === "add" ? null : form}
        onDone=${done} onCancel=${() => setForm(null)} />`}
      ${dialog}
      <table data-table="workers">
        <thead><tr>
          <th>URL</th><th>Model</th><th>Type</th><th>Status</th><th>Health</th><th>Circuit</th>
          <th>Load</th><th>Labels</th><th>Priority</th><th>Nodes</th><th></th>
        </tr></thead>
        <tbody>
          ${workers.map((w) => {
            const expanded = open[w.id] ?? agreement(w.health_by_node) === "disagree"; // until toggled
            return html`<${WorkerRow} key=${w.id} worker=${w} expanded=${expanded}
            onExpand=${() => setOpen({ ...open, [w.id]: !expanded })}
            onEdit=${setForm} onAsk=${ask} />`;
          })}
        </tbody>
      </table>
      ${data && !workers.length && html`<p class="empty">No workers yet.</p>`}
    </section>
  `;
}
