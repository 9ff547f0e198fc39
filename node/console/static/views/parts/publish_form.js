// Publishing a deployment (POST /api/models/{name}/publish): its external path, the
// tenants allowed to call it and its rate limits. The publication's key comes back once,
// to `onPublished(answer)`.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { FieldError, useAction } from "../../lib/forms.js";
import { LimitsInputs, limitsFrom } from "./limits.js";
import { text, list, defined } from "./values.js";
import { modelPath } from "./model_form.js";

const RATE = "config.rateLimiting.";

export function PublishForm({ model, onPublished, onCancel }) {
  const [run, { busy, error }] = useAction();
  const submit = (event) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const allowed = list(data, "config.authentication.allowedTenants");
    const config = defined({
      externalPath: text(data, "config.externalPath"),
      rateLimiting: limitsFrom(data, RATE) ?? undefined,
      authentication: allowed ? { allowedTenants: allowed } : undefined,
    });
    run(async () => onPublished(await api("POST", modelPath(model, "/publish"), { config })));
  };
  return html`
    <form class="form" data-form="publish" onSubmit=${submit}>
      <h3>Publish ${model.namespace}/${model.name}</h3>
      <label>External path <input name="config.externalPath" placeholder=${`/models/${model.name}`} /></label>
      <${FieldError} error=${error} field="config.externalPath" />
      <label>Allowed tenants <input name="config.authentication.allowedTenants" placeholder=${model.namespace} /></label>
      <${FieldError} error=${error} field="config.authentication.allowedTenants" />
      <fieldset><legend>Rate limits</legend><${LimitsInputs} prefix=${RATE} /></fieldset>
      <${FieldError} error=${error} field="limits" />
      <${FieldError} error=${error} />
      <div class="form-actions">
        <button type="submit" data-action="publish" disabled=${busy}>Publish</button>
        <button type="button" data-action="cancel" onClick=${onCancel}>Cancel</button>
      </div>
    </form>
  `;
}
