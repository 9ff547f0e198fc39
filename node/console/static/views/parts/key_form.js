// Creating a managed key (POST /api/keys): name, tenant (admins name it), role, models,
// limits and expiry; inputs named as the API's (camelCase) fields. The new key comes back
// once, to `onCreated(answer)`, and the form keeps nothing of it.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { FieldError, useAction } from "../../lib/forms.js";
import { LimitsInputs, limitsFrom } from "./limits.js";
import { text, integer, list, defined } from "./values.js";

export function KeyForm({ caller, tenants, onCreated }) {
  const [run, { busy, error }] = useAction();
  const roles = caller.admin ? ["user", "minter", "admin"] : ["user", "minter"];
  const submit = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    run(async () => {
      const created = await api("POST", "/api/keys", defined({
        name: text(data, "name"),
        namespace: caller.admin ? text(data, "namespace") : undefined,
        role: text(data, "role"),
        models: list(data, "models"),
        limits: limitsFrom(data) ?? undefined,
        expiresInSecs: integer(data, "expiresInSecs"),
      }));
      form.reset();
      onCreated(created);
    });
  };
  return html`
    <form class="form" data-form="create-key" onSubmit=${submit}>
      <h3>Create a key</h3>
      <label>Name <input name="name" placeholder="key" maxlength="100" /></label>
      <${FieldError} error=${error} field="name" />
      ${caller.admin &&
      html`<label>Tenant
          <select name="namespace">
            <option value="">none (admin keys only)</option>
            ${tenants.map((t) => html`<option value=${t.name}>${t.name}</option>`)}
          </select>
        </label>
        <${FieldError} error=${error} field="namespace" />`}
      <label>Role
        <select name="role">${roles.map((r) => html`<option value=${r}>${r}</option>`)}</select>
      </label>
      <${FieldError} error=${error} field="role" />
      <label>Models <input name="models" placeholder="all; or model-a, model-b" /></label>
      <${FieldError} error=${error} field="models" />
      <fieldset><legend>Limits</legend><${LimitsInputs} /></fieldset>
      <${FieldError} error=${error} field="limits" />
      <label>Expires in (seconds) <input name="expiresInSecs" inputmode="numeric" placeholder="never" /></label>
      <${FieldError} error=${error} field="expiresInSecs" />
      <${FieldError} error=${error} />
      <div class="form-actions"><button type="submit" data-action="create-key" disabled=${busy}>Create</button></div>
    </form>
  `;
}
