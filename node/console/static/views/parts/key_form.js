// Creating a managed key (POST /api/keys): name, tenant (admins name it), role, models,
// limits and expiry; inputs named as the API's (camelCase) fields. The new key comes back
// once, to `onCreated(answer)`, and the form keeps nothing of it.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { useAction } from "../../lib/forms.js";
import { Input, Field, FormActions } from "./fields.js";
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
      <${Input} label="Name" name="name" error=${error} placeholder="key" maxlength="100" />
      ${caller.admin && html`
        <${Field} label="Tenant" name="namespace" error=${error}>
          <select name="namespace">
            ${tenants.map((t) => html`<option value=${t.name}>${t.name}</option>`)}
            <option value="">none (admin keys only)</option>
          </select>
        <//>`}
      <${Field} label="Role" name="role" error=${error}>
        <select name="role">${roles.map((r) => html`<option value=${r}>${r}</option>`)}</select>
      <//>
      <${Input} label="Models" name="models" error=${error} placeholder="all; or model-a, model-b" />
      <${LimitsInputs} error=${error} />
      <${Input} label="Expires in (seconds)" name="expiresInSecs" error=${error} inputmode="numeric" placeholder="never" />
      <${FormActions} error=${error} busy=${busy} action="create-key" label="Create" />
    </form>
  `;
}
