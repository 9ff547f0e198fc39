// Publishing a deployment (POST /api/models/{name}/publish) or changing its publication
// (PUT): its external path, the tenants allowed to call it and its rate limits. A new
// publication's key comes back once, to `onDone(answer)`.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { useAction } from "../../lib/forms.js";
import { Input, FormActions } from "./fields.js";
import { LimitsInputs, limitsFrom } from "./limits.js";
import { text, list, defined } from "./values.js";
import { modelPath } from "./model_form.js";

const RATE = "config.rateLimiting.";

// `publication`: the one to change, or null to publish `model`.
export function PublishForm({ model, publication, onDone, onCancel }) {
  const [run, { busy, error }] = useAction();
  const p = publication || {};
  const submit = (event) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const allowed = list(data, "config.authentication.allowedTenants");
    const config = defined({
      externalPath: text(data, "config.externalPath"),
      rateLimiting: limitsFrom(data, RATE) ?? undefined,
      authentication: allowed ? { allowedTenants: allowed } : undefined,
    });
    run(async () => onDone(await api(publication ? "PUT" : "POST", modelPath(model, "/publish"), { config })));
  };
  return html`
    <form class="form" data-form=${publication ? "edit-publication" : "publish"} onSubmit=${submit}>
      <h3>${publication ? "Change the publication of" : "Publish"} ${model.namespace}/${model.name}</h3>
      <${Input} label="External path" name="config.externalPath" error=${error}
        defaultValue=${publication ? new URL(p.externalUrl).pathname : ""} placeholder=${`/models/${model.name}`} />
      <${Input} label="Allowed tenants" name="config.authentication.allowedTenants" error=${error}
        defaultValue=${(p.allowedTenants || []).join(", ")} placeholder=${model.namespace} />
      <${LimitsInputs} legend=${publication ? "Rate limits (a limit left empty stays as it is)" : "Rate limits"}
        prefix=${RATE} values=${p.rateLimiting} error=${error} />
      <${FormActions} error=${error} busy=${busy} action=${publication ? "save" : "publish"}
        label=${publication ? "Save" : "Publish"} onCancel=${onCancel} />
    </form>
  `;
}
