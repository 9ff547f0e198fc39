// Models and publishing: deployments (create, change, delete) and their publications with
// their limits (publish, rotate the key: the new key shown once with a copy button,
// unpublish). Only the actions the API allows the caller are offered (parts/caller.js).
import { html, useState } from "../lib/html.js";
import { api } from "../lib/api.js";
import { useLiveData } from "./parts/live_data.js";
import { useConfirmed } from "./parts/confirmed.js";
import { useCaller, mayManage } from "./parts/caller.js";
import { ShownOnce } from "./parts/shown_once.js";
import { ModelForm, modelPath } from "./parts/model_form.js";
import { PublishForm } from "./parts/publish_form.js";
import { limitsText } from "./parts/limits.js";

const FAMILIES = ["model", "publish", "key", "tenant"];

async function load(admin) {
  const [models, published, keys, tenants] = await Promise.all([
    api("GET", "/api/models"),
    api("GET", "/api/published-models"),
    admin ? Promise.resolve({ keys: [] }) : api("GET", "/api/keys"),
    admin ? api("GET", "/api/admin/tenants") : Promise.resolve({ tenants: [] }),
  ]);
  return { models: models.models, published: published.publishedModels, keys: keys.keys, tenants: tenants.tenants };
}

// A publication is managed (publish, rotate, unpublish, and changing its deployment) by
// a minting caller that may manage its key (node/api/models.py _may_manage_publication).
function managesPublication(caller, publication, keys) {
  if (!caller?.canMint) return false;
  const byId = Object.fromEntries(keys.map((k) => [k.id, k]));
  const key = byId[publication.keyId] || { id: publication.keyId, tenant: publication.tenantId };
  return mayManage(caller, key, byId);
}

const ref = (namespace, name) => `${namespace}/${name}`;

function ModelsTable({ models, publications, mayChange, onEdit, onPublish, onAsk }) {
  return html`
    <table data-table="models">
      <thead><tr><th>Name</th><th>Tenant</th><th>Status</th><th>Workers</th><th>Policy</th><th>Published</th><th></th></tr></thead>
      <tbody>
        ${models.map((m) => {
          const publication = publications[ref(m.namespace, m.name)];
          const may = mayChange(publication);
          return html`
            <tr key=${ref(m.namespace, m.name)} data-row=${ref(m.namespace, m.name)}>
              <td>${m.name}${m.description ? html`<div class="hint">${m.description}</div>` : ""}</td>
              <td>${m.namespace}</td><td>${m.status}</td>
              <td>${m.statusDetails.replicas.ready} of ${m.statusDetails.replicas.total} ready</td>
              <td>${m.policy}</td><td>${m.published ? "yes" : "no"}</td>
              <td><div class="actions">
                ${may && html`<button type="button" data-action="edit" onClick=${() => onEdit(m)}>Edit</button>`}
                ${!m.published && mayChange(null, true) &&
                html`<button type="button" data-action="publish" onClick=${() => onPublish(m)}>Publish</button>`}
                ${may && !m.published && html`<button type="button" class="danger" data-action="delete" onClick=${() =>
                  onAsk(`Delete deployment ${m.namespace}/${m.name}?`, () => api("DELETE", modelPath(m)))}>Delete</button>`}
              </div></td>
            </tr>`;
        })}
      </tbody>
    </table>
  `;
}

function PublicationsTable({ publications, mayManagePub, onAsk, onRotated, onEdit }) {
  return html`
    <table data-table="publications">
      <thead><tr>
        <th>Model</th><th>External URL</th><th>Key</th><th>Rate limits</th><th>Allowed tenants</th>
        <th>Requests</th><th></th>
      </tr></thead>
      <tbody>
        ${publications.map((p) => {
          const model = { name: p.modelName, namespace: p.namespace };
          return html`
            <tr key=${ref(p.namespace, p.modelName)} data-row=${ref(p.namespace, p.modelName)}>
              <td>${p.namespace}/${p.modelName}</td><td class="mono">${p.externalUrl}</td>
              <td class="mono">${p.requireApiKey ? p.apiKey : "open (no key needed)"}</td>
              <td>${limitsText(p.rateLimiting)}</td><td>${(p.allowedTenants || []).join(", ")}</td>
              <td>${p.usage.totalRequests}</td>
              <td><div class="actions">
                ${mayManagePub(p) && html`
                  <button type="button" data-action="edit" onClick=${() => onEdit(model, p)}>Edit</button>
                  <button type="button" class="danger" data-action="rotate-key" onClick=${() =>
                    onAsk(`Rotate the key of ${p.namespace}/${p.modelName}? The current key stops working on every node.`,
                      async () => onRotated(p, await api("POST", modelPath(model, "/publish/rotate-key"))))}>Rotate key</button>
                  <button type="button" class="danger" data-action="unpublish" onClick=${() =>
                    onAsk(`Unpublish ${p.namespace}/${p.modelName}? Its external path and key stop working.`,
                      () => api("DELETE", modelPath(model, "/publish")))}>Unpublish</button>`}
              </div></td>
            </tr>`;
        })}
      </tbody>
    </table>
  `;
}

export default function View({ session }) {
  const caller = useCaller(session);
  const { data, error, reload } = useLiveData(() => load(session.admin), FAMILIES);
  const [form, setForm] = useState(null); // {kind: "create"|"edit"|"publish", model}
  const [secret, setSecret] = useState(null);
  const { ask, dialog } = useConfirmed(reload);
  const { models = [], published = [], keys = [], tenants = [] } = data || {};
  const byRef = Object.fromEntries(published.map((p) => [ref(p.namespace, p.modelName), p]));
  const mayManagePub = (p) => managesPublication(caller, p, keys);
  // Anyone of the tenant may change an unpublished deployment; publishing needs minting.
  const mayChange = (publication, publishing = false) =>
    Boolean(caller) && (publishing ? caller.canMint : !publication || mayManagePub(publication));
  const done = () => {
    setForm(null);
    reload();
  };
  const showKey = (title, key) => {
    setSecret({ title, key });
    done();
  };
  return html`
    <section data-view="models">
      <header class="view-header">
        <h2>Models and publishing</h2>
        <button type="button" data-action="create-model" onClick=${() => setForm({ kind: "create" })}>Create a deployment</button>
      </header>
      ${error && html`<p class="error" data-error="load">${error.message}</p>`}
      ${dialog}
      ${secret && html`<${ShownOnce} title=${secret.title} secret=${secret.key} onClose=${() => setSecret(null)} />`}
      ${form?.kind === "publish"
        ? html`<${PublishForm} model=${form.model} onCancel=${() => setForm(null)}
            onDone=${(answer) => showKey(`Published ${form.model.name}`, answer.publishedModel.apiKey)} />`
        : form?.kind === "edit-publication"
        ? html`<${PublishForm} key=${ref(form.model.namespace, form.model.name)} model=${form.model}
            publication=${form.publication} onCancel=${() => setForm(null)} onDone=${done} />`
        : form && html`<${ModelForm} key=${form.model ? ref(form.model.namespace, form.model.name) : "create"}
            model=${form.model || null} admin=${session.admin} tenants=${tenants}
            onDone=${done} onCancel=${() => setForm(null)} />`}
      <h3>Deployments</h3>
      <${ModelsTable} models=${models} publications=${byRef} mayChange=${mayChange} onAsk=${ask}
        onEdit=${(model) => setForm({ kind: "edit", model })} onPublish=${(model) => setForm({ kind: "publish", model })} />
      ${data && !models.length && html`<p class="empty">No deployments yet.</p>`}
      <h3>Publications</h3>
      <${PublicationsTable} publications=${published} mayManagePub=${mayManagePub} onAsk=${ask}
        onEdit=${(model, publication) => setForm({ kind: "edit-publication", model, publication })}
        onRotated=${(p, answer) => setSecret({ title: `New key for ${p.namespace}/${p.modelName}`, key: answer.newApiKey })} />
      ${data && !published.length && html`<p class="empty">Nothing published yet.</p>`}
    </section>
  `;
}
