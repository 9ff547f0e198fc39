// Creating a tenant (POST /api/admin/tenants): name, description and limits.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { useAction } from "../../lib/forms.js";
import { Input, FormActions } from "./fields.js";
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
      <${Input} label="Name" name="name" error=${error} placeholder="team-a" />
      <${Input} label="Description" name="description" error=${error} />
      <${LimitsInputs} error=${error} />
      <${FormActions} error=${error} busy=${busy} action="create-tenant" label="Create" />
    </form>
  `;
}
