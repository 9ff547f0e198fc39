// Creating a deployment (POST /api/models) or changing one (PUT /api/models/{name}): the
// inputs are named as the API's (camelCase) fields; what is left empty is not sent.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { useAction } from "../../lib/forms.js";
import { Input, Field, FormActions } from "./fields.js";
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
      ${adding && html`<${Input} label="Name" name="name" error=${error} placeholder="chat" />`}
      ${adding && admin && html`
        <${Field} label="Tenant" name="namespace" error=${error}>
          <select name="namespace">${tenants.map((t) => html`<option value=${t.name}>${t.name}</option>`)}</select>
        <//>`}
      <${Input} label="Worker model id" name="modelId" error=${error} defaultValue=${m.predictor?.selector?.model_id || ""} placeholder="the name" />
      <${Input} label="Policy" name="policy" error=${error} defaultValue=${m.policy || ""} placeholder="the mesh's default" />
      <${Input} label="Description" name="description" error=${error} defaultValue=${m.description || ""} />
      <${Input} label="Min replicas" name="minReplicas" error=${error} inputmode="numeric" defaultValue=${scaling.minReplicas ?? ""} />
      <${Input} label="Max replicas" name="maxReplicas" error=${error} inputmode="numeric" defaultValue=${scaling.maxReplicas ?? ""} />
      <${FormActions} error=${error} busy=${busy} action=${adding ? "create-model" : "save"} label=${adding ? "Create" : "Save"} onCancel=${onCancel} />
    </form>
  `;
}
