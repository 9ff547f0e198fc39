// Tenants and keys. Admins: every tenant (create, delete) and every key. A tenant user:
// its own tenant's keys only (the API lists no others) and only the actions the API
// allows it (parts/caller.js). A new or rotated key is shown once, with a copy button.
import { html, useState } from "../lib/html.js";
import { api } from "../lib/api.js";
import { getSession, setSession } from "../lib/session.js";
import { useLiveData } from "./parts/live_data.js";
import { useConfirmed } from "./parts/confirmed.js";
import { useCaller, mayManage } from "./parts/caller.js";
import { ShownOnce } from "./parts/shown_once.js";
import { KeyForm } from "./parts/key_form.js";
import { TenantForm } from "./parts/tenant_form.js";
import { limitsText } from "./parts/limits.js";

const FAMILIES = ["tenant", "key", "publish"];

async function load(admin) {
  const [keys, tenants] = await Promise.all([
    api("GET", "/api/keys"),
    admin ? api("GET", "/api/admin/tenants") : Promise.resolve({ tenants: [] }),
  ]);
  return { keys: keys.keys, tenants: tenants.tenants };
}

function TenantsTable({ tenants, onAsk }) {
  return html`
    <table data-table="tenants">
      <thead><tr><th>Name</th><th>Status</th><th>Created</th><th>Description</th><th>Limits</th><th></th></tr></thead>
      <tbody>
        ${tenants.map((t) => html`
          <tr key=${t.name} data-row=${t.name}>
            <td>${t.name}</td><td>${t.status}</td><td>${t.created}</td><td>${t.description || ""}</td>
            <td>${limitsText(t.limits)}</td>
            <td><div class="actions">
              <button type="button" class="danger" data-action="delete" onClick=${() =>
                onAsk(`Delete tenant ${t.name}? The API refuses while it has active keys or models.`, () =>
                  api("DELETE", `/api/admin/tenants/${encodeURIComponent(t.name)}`))}>Delete</button>
            </div></td>
          </tr>`)}
      </tbody>
    </table>
  `;
}

function KeysTable({ keys, caller, onAsk, onRotated }) {
  const byId = Object.fromEntries(keys.map((k) => [k.id, k]));
  const active = keys.filter((k) => k.status === "active");
  const own = (k, then) => (k.id === caller.keyId ? ` This is the key you are signed in with: ${then}` : "");
  const path = (k) => `/api/keys/${encodeURIComponent(k.id)}`;
  return html`
    <table data-table="keys">
      <thead><tr>
        <th>Name</th><th>Tenant</th><th>Role</th><th>Prefix</th><th>Models</th><th>Limits</th>
        <th>Expires</th><th>Minted by</th><th></th>
      </tr></thead>
      <tbody>
        ${active.map((k) => html`
          <tr key=${k.id} data-row=${k.id}>
            <td>${k.name}${k.publishedModel ? html`<div class="hint">publication ${k.publishedModel}</div>` : ""}</td>
            <td>${k.tenant || "(none)"}</td><td>${k.role}</td><td class="mono">${k.prefix}…</td>
            <td>${k.models ? k.models.join(", ") : "all"}</td><td>${limitsText(k.limits)}</td>
            <td>${k.expiresAt || "never"}</td><td>${k.parent ? byId[k.parent]?.name || k.parent : ""}</td>
            <td><div class="actions">
              ${mayManage(caller, k, byId) && html`
                <button type="button" class="danger" data-action="rotate" onClick=${() =>
                  onAsk(`Rotate ${k.name}? Its current secret stops working on every node.${own(k, "this page goes on with the new one.")}`, async () =>
                    onRotated(k, await api("POST", `${path(k)}/rotate`)))}>Rotate</button>
                <button type="button" class="danger" data-action="revoke" onClick=${() =>
                  onAsk(`Revoke ${k.name}? It stops working on every node, with every key minted from it.${own(k, "you will be signed out.")}`, () =>
                    api("DELETE", path(k)))}>Revoke</button>`}
            </div></td>
          </tr>`)}
      </tbody>
    </table>
    ${keys.length > active.length && html`<p class="hint">${keys.length - active.length} revoked or expired key(s) not shown.</p>`}
  `;
}

export default function View({ session }) {
  const caller = useCaller(session);
  const { data, error, reload } = useLiveData(() => load(session.admin), FAMILIES);
  const [secret, setSecret] = useState(null); // {title, key}: shown once, dropped on close
  const { ask, dialog } = useConfirmed(reload);
  const shown = (title, key) => {
    setSecret({ title, key });
    reload();
  };
  const { keys = [], tenants = [] } = data || {};
  return html`
    <section data-view="tenants">
      <header class="view-header">
        <h2>${session.admin ? "Tenants and keys" : `Tenant ${caller?.tenant ?? session.tenant ?? ""}: keys`}</h2>
      </header>
      ${error && html`<p class="error" data-error="load">${error.message}</p>`}
      ${dialog}
      ${secret && html`<${ShownOnce} title=${secret.title} secret=${secret.key} onClose=${() => setSecret(null)} />`}
      ${session.admin && html`
        <h3>Tenants</h3>
        <${TenantsTable} tenants=${tenants} onAsk=${ask} />
        <${TenantForm} onDone=${reload} />`}
      <h3>Keys</h3>
      ${caller && html`<${KeysTable} keys=${keys} caller=${caller} onAsk=${ask}
        onRotated=${(k, answer) => {
          if (k.id === caller.keyId) setSession({ ...getSession(), token: answer.newApiKey }); // the old one is dead
          shown(`New secret for ${k.name}`, answer.newApiKey);
        }} />`}
      ${caller?.canMint && html`<${KeyForm} caller=${caller} tenants=${tenants}
        onCreated=${(answer) => shown(`Key ${answer.name} created`, answer.apiKey)} />`}
    </section>
  `;
}
