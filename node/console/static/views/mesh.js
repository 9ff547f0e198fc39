// The Mesh view: every node with its role, indexes, lag, state, version and last contact;
// the leader highlighted; the quorum. From /ha/status: polled (a new leader is not a log
// entry the feed carries) and refetched at once when the live feed shows a change of a
// member (a drain made through any node, shown from the feed's own event at once). Actions, each behind a confirmation: drain and
// undo, shut down one node, a rolling restart (views/rolling.js).
import { html, useState, useEffect, useRef } from "../lib/html.js";
import { api } from "../lib/api.js";
import { usePoll } from "../lib/poll.js";
import { subscribe } from "../lib/live.js";
import { rememberNodes } from "../lib/nodes.js";
import { FieldError, useAction, useConfirm } from "../lib/forms.js";
import { DEFAULT_SETTLE_SECS, rollingRestart } from "./rolling.js";

const POLL_MS = 2000;
const MEMBER_OPS = /^(member|shutdown)\./; // changes that show in /ha/status at once

async function fetchStatus() {
  const status = await api("GET", "/ha/status");
  rememberNodes(status);
  return status;
}

// A drain the feed announced, shown at once until a fetched /ha/status has applied it.
function useFeedDrains(refresh) {
  const drains = useRef({}); // node name -> the index of the change that drained it
  const [shown, setShown] = useState({});
  useEffect(
    () =>
      subscribe((e) => {
        if (e.type !== "change" || !MEMBER_OPS.test(e.op ?? "")) return;
        const args = e.object ?? {};
        if (e.ok && e.op === "member.set_draining" && typeof args.name === "string") {
          // An undo shows with the node's next report (it stays not ready until then).
          const { [args.name]: _, ...others } = drains.current;
          drains.current = args.draining === true ? { ...others, [args.name]: e.index } : others;
          setShown(drains.current);
        }
        refresh();
      }),
    [],
  );
  return shown;
}

// The status with each feed-announced drain its fetch has not applied yet.
function withDrains(status, drains) {
  if (!status) return status;
  const nodes = status.nodes.map((n) => {
    const index = drains[n.name];
    if (index === undefined || status.applied_index >= index || n.status !== "alive") return n;
    return { ...n, status: "draining" };
  });
  return { ...status, nodes };
}

export default function MeshView() {
  const { data: fetched, error, refresh } = usePoll(fetchStatus, POLL_MS);
  const status = withDrains(fetched, useFeedDrains(refresh));
  const [run, action] = useAction();
  const [ask, dialog] = useConfirm();
  const act = (text, method, path, body) =>
    ask(text, () => run(() => api(method, path, body)).then(refresh));
  return html`<section data-view="mesh">
    <h2>Mesh</h2>
    ${error ? html`<p class="error" data-error="status">${error.message}</p>` : null}
    ${dialog}
    <${FieldError} error=${action.error} field="form" />
    ${status
      ? html`<${Summary} status=${status} />
          <${Nodes} status=${status} act=${act} busy=${action.busy} />
          <${RollingRestart} ask=${ask} onChange=${refresh} />`
      : null}
  </section>`;
}

function Summary({ status }) {
  const leader = status.leader?.name ?? null;
  return html`<dl class="summary" data-table="summary">
    <dt>Leader</dt><dd data-leader=${leader ?? ""}>${leader ?? "none"}</dd>
    <dt>Quorum</dt><dd data-quorum=${String(Boolean(status.has_quorum))}>${status.has_quorum ? "yes" : "NO"}</dd>
    <dt>Term</dt><dd>${status.term}</dd>
    <dt>Commit index</dt><dd>${status.commit_index}</dd>
    <dt>Serving nodes</dt><dd>${status.serving_nodes ?? "—"} of ${status.node_count}</dd>
    <dt>This node</dt><dd>${status.node_name}</dd>
  </dl>`;
}

function Nodes({ status, act, busy }) {
  const leader = status.leader?.name ?? null;
  return html`<table data-table="nodes">
    <thead>
      <tr>
        <th>Node</th><th>Role</th><th>State</th><th>Ready</th><th>Applied</th><th>Match</th>
        <th>Lag</th><th>Version</th><th>Last contact</th><th>Actions</th>
      </tr>
    </thead>
    <tbody>
      ${status.nodes.map((n) => {
        const isLeader = n.name !== null && n.name === leader;
        return html`<tr data-row=${n.name ?? n.raft_address ?? ""} data-leader=${String(isLeader)} class=${isLeader ? "leader" : ""}>
          <td>${n.name ?? n.raft_address}${isLeader ? " ★" : ""}</td>
          <td data-field="role">${n.role}</td>
          <td data-field="status">${n.status}</td>
          <td data-field="ready">${n.ready ? "ready" : "not ready"}</td>
          <td>${n.applied_index ?? "—"}</td>
          <td>${n.match_index ?? "—"}</td>
          <td data-field="lag">${lag(n)}</td>
          <td>${n.version ?? "—"}</td>
          <td>${contact(n, status.node_name)}</td>
          <td class="actions">${n.name ? NodeActions(n, act, busy) : null}</td>
        </tr>`;
      })}
    </tbody>
  </table>`;
}

function NodeActions(node, act, busy) {
  const name = node.name;
  const drain =
    node.status === "draining"
      ? html`<button type="button" data-action="undrain" disabled=${busy}
          onClick=${() => act(`Serve from ${name} again (end its drain)?`, "POST", "/ha/drain", { target: name, draining: false })}>Undo drain</button>`
      : html`<button type="button" data-action="drain" disabled=${busy}
          onClick=${() => act(`Drain ${name}? It reports not ready, so load balancers take it out of rotation.`, "POST", "/ha/drain", { target: name, draining: true })}>Drain</button>`;
  return html`${drain}
    <button type="button" class="danger" data-action="shutdown" disabled=${busy}
      onClick=${() => act(`Shut down ${name}? It drains, then exits; its supervisor decides whether it starts again.`, "POST", "/ha/shutdown", { target: name })}>Shut down</button>`;
}

function RollingRestart({ ask, onChange }) {
  const [steps, setSteps] = useState([]);
  const [state, setState] = useState({ running: false, error: null, done: false });
  const [settle, setSettle] = useState(String(DEFAULT_SETTLE_SECS));
  const start = () => {
    setSteps([]);
    setState({ running: true, error: null, done: false });
    const onStep = (step) => {
      setSteps((all) => [...all.filter((s) => s.name !== step.name), step]);
      onChange();
    };
    rollingRestart({ settleSecs: Number(settle), onStep }).then(
      () => setState({ running: false, error: null, done: true }),
      (e) => setState({ running: false, error: e instanceof Error ? e.message : String(e), done: false }),
    );
  };
  const settleOk = settle !== "" && Number(settle) >= 0 && Number(settle) <= 600;
  return html`<div class="rolling" data-table="rolling">
    <h3>Rolling restart</h3>
    <p>One node at a time, the leader last, each back, ready and caught up before the next (as <code>meshgate cluster rolling-restart</code>).</p>
    <label>Settle seconds after each node
      <input name="settle_secs" type="number" min="0" max="600" step="0.5" value=${settle} onInput=${(e) => setSettle(e.currentTarget.value)} />
    </label>
    ${settleOk ? null : html`<p class="error" data-error="settle_secs">settle seconds must be a number from 0 to 600</p>`}
    <button type="button" class="danger" data-action="rolling-restart" disabled=${state.running || !settleOk}
      onClick=${() => ask("Restart every node, one at a time?", start)}>Start a rolling restart</button>
    ${state.error ? html`<p class="error" data-error="rolling">${state.error}</p>` : null}
    <ol class="progress">
      ${steps.map((s) => html`<li data-row=${s.name} data-phase=${s.phase}>${s.name}: ${phaseText(s)}</li>`)}
    </ol>
    ${state.done ? html`<p data-rolling="done">Rolling restart done.</p>` : null}
  </div>`;
}

function phaseText(step) {
  if (step.phase === "restarting") return "restarting…";
  if (step.phase === "settling") return "back, ready and caught up; settling…";
  return `back, ready, caught up and settled (${step.secs.toFixed(1)} s)`;
}

function lag(node) {
  if (typeof node.behind_by !== "number") return "—";
  return node.caught_up ? `${node.behind_by} (caught up)` : String(node.behind_by);
}

function contact(node, self) {
  if (node.name === self) return "this node";
  if (typeof node.last_contact !== "number") return node.error ?? "—";
  const secs = Math.max(0, Date.now() / 1000 - node.last_contact);
  return `${secs.toFixed(1)} s ago`;
}
