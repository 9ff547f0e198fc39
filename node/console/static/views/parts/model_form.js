// Creating a deployment (POST /api/models) or changing one (PUT /api/models/{name}): the
// inputs are named as the API's (camelCase) fields; what is left empty is not sent.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { FieldError, useAction } from "../../lib/forms.js";
import { text, integer, defined } from "./values.js";

export const modelPath = (m, tail = "") =>
  `/api/models/${encodeURIComponent(m.name)}${tail}?namespace=${encodeURIComponent(m.namespace)}`;

function body(data, adding, admin) {
  return defined({
    name: adding ? text(data, "name") ?? "" : undefined,
    namespace: adding && admin ? text(data, "namespace") : undefined,
    modelId: text(data, "modelId"),
    policy: text(data, "policy"),
    description: text(data, "description"),
    minReplicas: integer(data, "minReplicas"),
    maxReplicas: integer(data, "maxReplicas"),
  });
}

// `model`: the deployment to change, or null to create one; `tenants`: an admin's choice.
export function ModelForm({ model, admin, tenants, onDone, onCancel }) {
  const adding = !model;
  const [run, { busy, error }] = useAction();
  const submit = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const fields = body(new FormData(form), adding, admin);
    run(async () => {
      if (adding) await api("POST", "/api/models", fields);
      else await api("PUT", modelPath(model), fields);
      form.reset();
      onDone();
    });
  };
  const m = model || {};
  const scaling = m.scaling || {};
  return html`
    <form class="form" data-form=${adding ? "create-model" : "edit-model"} onSubmit=${submit}>
      <h3>${adding ? "Create a deployment" : `Change ${m.namespace}/${m.name}`}</h3>
      ${adding && html`
        <label>Name <input name="name" placeholder="chat" autocomplete="off" /></label>
        <${FieldError} error=${error} field="name" />
        ${admin && html`<label>Tenant
            <select name="namespace">${tenants.map((t) => html`<option value=${t.name}>${t.name}</option>`)}</select>
          </label>
          <${FieldError} error=${error} field="namespace" />`}`}
      <label>Worker model id <input name="modelId" defaultValue=${m.predictor?.selector?.model_id || ""} placeholder="the name" /></label>
      <${FieldError} error=${error} field="modelId" />
      <label>Policy <input name="policy" defaultValue=${m.policy || ""} placeholder="the mesh's default" /></label>
      <${FieldError} error=${error} field="policy" />
      <label>Description <input name="description" defaultValue=${m.description || ""} /></label>
      <${FieldError} error=${error} field="description" />
      <label>Min replicas <input name="minReplicas" inputmode="numeric" defaultValue=${scaling.minReplicas ?? ""} /></label>
      <${FieldError} error=${error} field="minReplicas" />
      <label>Max replicas <input name="maxReplicas" inputmode="numeric" defaultValue=${scaling.maxReplicas ?? ""} /></label>
      <${FieldError} error=${error} field="maxReplicas" />
      <${FieldError} error=${error} />
      <div class="form-actions">
        <button type="submit" data-action=${adding ? "create-model" : "save"} disabled=${busy}>${adding ? "Create" : "Save"}</button>
        ${onCancel && html`<button type="button" data-action="cancel" onClick=${onCancel}>Cancel</button>`}
      </div>
    </form>
  `;
}
