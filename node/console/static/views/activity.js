// The Activity view: the live feed of committed changes from /ws (newest first, the last
// 500), and below it this node's audit log (admins: GET /api/admin/audit). Everything an
// answer holds is shown as text: names and objects come from other users.
import { html, useState, useEffect } from "../lib/html.js";
import { api } from "../lib/api.js";
import { subscribe } from "../lib/live.js";
import { onSessionChange } from "../lib/session.js";
import { usePoll } from "../lib/poll.js";

const KEEP = 500; // changes kept in the feed
const OBJECT_CHARS = 300; // of a change's object shown in its row
const AUDIT_LIMITS = [50, 100, 500];
const AUDIT_POLL_MS = 10000;

// The feed is gathered from the first time the view is opened, also while another view
// shows; a new session (another user, maybe another tenant) starts it empty.
const changes = [];
const listeners = new Set();
let gap = false; // the socket dropped: changes may have been missed meanwhile

function changed() {
  for (const fn of [...listeners]) fn();
}

subscribe((event) => {
  if (event.type === "change") changes.unshift(event);
  else if (event.type === "resync") gap = true;
  else return;
  changes.splice(KEEP);
  changed();
});
onSessionChange(() => {
  changes.length = 0;
  gap = false;
  changed();
});

function useChanges() {
  const [, setTick] = useState(0);
  useEffect(() => {
    const changed = () => setTick((n) => n + 1);
    listeners.add(changed);
    return () => listeners.delete(changed);
  }, []);
  return changes;
}

function when(seconds) {
  return typeof seconds === "number" ? new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) : "—";
}

function shortJson(value) {
  const text = JSON.stringify(value ?? null) ?? "";
  return text.length > OBJECT_CHARS ? `${text.slice(0, OBJECT_CHARS)}…` : text;
}

export default function ActivityView({ session }) {
  return html`<section data-view="activity">
    <h2>Activity</h2>
    <${Feed} />
    ${session?.admin ? html`<${Audit} />` : null}
  </section>`;
}

function Feed() {
  const rows = useChanges();
  return html`<h3>Live changes</h3>
    ${gap ? html`<p class="notice" data-error="gap">The live feed reconnected: changes made meanwhile may be missing here.</p>` : null}
    ${rows.length === 0 ? html`<p class="loading" data-empty="feed">No change since this page opened.</p>` : null}
    <table data-table="changes">
      <thead><tr><th>Index</th><th>Operation</th><th>By</th><th>At</th><th>Result</th><th>Object</th></tr></thead>
      <tbody>
        ${rows.map(
          (c) => html`<tr key=${c.index} data-row=${String(c.index)} data-ok=${String(Boolean(c.ok))}>
            <td>${c.index}</td>
            <td data-field="op">${c.op}</td>
            <td data-field="by">${c.by ?? "—"}</td>
            <td>${when(c.at)}</td>
            <td>${c.ok ? "applied" : "refused"}</td>
            <td data-field="object"><code>${shortJson(c.object)}</code></td>
          </tr>`,
        )}
      </tbody>
    </table>`;
}

function Audit() {
  const [kind, setKind] = useState("changes");
  const [limit, setLimit] = useState(100);
  const { data, error, refresh } = usePoll(
    () => api("GET", `/api/admin/audit?kind=${kind}&limit=${limit}`),
    AUDIT_POLL_MS,
  );
  useEffect(() => {
    refresh(); // new filters: fetch them now
  }, [kind, limit]);
  const entries = data ? [...data.entries].reverse() : []; // newest first
  return html`<h3>Audit log${data ? ` of ${data.node}` : ""}</h3>
    <div class="actions">
      <label>Kind
        <select name="kind" value=${kind} onChange=${(e) => setKind(e.target.value)}>
          <option value="changes">changes</option>
          <option value="refusals">refusals</option>
        </select>
      </label>
      <label>Entries
        <select name="limit" value=${limit} onChange=${(e) => setLimit(Number(e.target.value))}>
          ${AUDIT_LIMITS.map((n) => html`<option value=${n}>last ${n}</option>`)}
        </select>
      </label>
    </div>
    ${error ? html`<p class="error" data-error="form">${error.message}</p>` : null}
    <table data-table="audit">
      <thead><tr><th>At</th><th>Who</th><th>Request</th><th>Status</th><th>From</th></tr></thead>
      <tbody>
        ${entries.map(
          (e, i) => html`<tr key=${`${e.ts}-${i}`} data-row=${e.request_id ?? `${e.ts}`}>
            <td>${when(e.ts)}</td>
            <td data-field="who">${e.principal ? `${e.principal.id} (${e.principal.kind})` : "—"}</td>
            <td data-field="request">${e.method} ${e.path}</td>
            <td>${e.status} ${e.result}</td>
            <td>${e.remote ?? "—"}</td>
          </tr>`,
        )}
      </tbody>
    </table>`;
}
