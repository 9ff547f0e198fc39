// Creating a tenant (POST /api/admin/tenants): name, description and limits.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { FieldError, useAction } from "../../lib/forms.js";
import { LimitsInputs, limitsFrom } from "./limits.js";
import { text, defined } from "./values.js";

export function TenantForm({ onDone }) {
  const [run, { busy, error }] = useAction();
  const submit = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    run(async () => {
      await api("POST", "/api/admin/tenants", defined({
        name: text(data, "name") ?? "",
        description: text(data, "description"),
        limits: limitsFrom(data) ?? undefined,
      }));
      form.reset();
      onDone();
    });
  };
  return html`
    <form class="form" data-form="create-tenant" onSubmit=${submit}>
      <h3>Create a tenant</h3>
      <label>Name <input name="name" placeholder="team-a" autocomplete="off" /></label>
      <${FieldError} error=${error} field="name" />
      <label>Description <input name="description" /></label>
      <${FieldError} error=${error} field="description" />
      <fieldset><legend>Limits</legend><${LimitsInputs} /></fieldset>
      <${FieldError} error=${error} field="limits" />
      <${FieldError} error=${error} />
      <div class="form-actions"><button type="submit" data-action="create-tenant" disabled=${busy}>Create</button></div>
    </form>
  `;
}
