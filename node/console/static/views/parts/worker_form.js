// Adding a worker (POST /workers) and editing one (PATCH /workers/{id}): one form, whose
// inputs are named as the API's fields, so the API's error shows next to the field it names.
// The worker's api_key is a password input, sent only when filled in and never shown back.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { FieldError, useAction } from "../../lib/forms.js";
import { text, integer, pairs, defined, pairsText } from "./values.js";

const TYPES = ["regular", "prefill", "decode"];

function body(form, adding) {
  return defined({
    url: adding ? text(form, "url") ?? "" : undefined,
    model_id: text(form, "model_id"),
    worker_type: text(form, "worker_type"),
    runtime: text(form, "runtime"),
    priority: integer(form, "priority"),
    labels: pairs(form, "labels"),
    api_key: text(form, "api_key"),
  });
}

// `worker`: the worker to edit, or null to add one. `onDone()` after a success.
export function WorkerForm({ worker, onDone, onCancel }) {
  const adding = !worker;
  const [run, { busy, error }] = useAction();
  const submit = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    run(async () => {
      const fields = body(new FormData(form), adding);
      if (adding) await api("POST", "/workers", fields);
      else await api("PATCH", `/workers/${encodeURIComponent(worker.id)}`, fields);
      form.reset(); // the api_key leaves the page with the form's values
      onDone();
    });
  };
  const w = worker || {};
  return html`
    <form class="form" data-form=${adding ? "add-worker" : "edit-worker"} onSubmit=${submit}>
      <h3>${adding ? "Add a worker" : `Edit worker ${w.url}`}</h3>
      ${adding &&
      html`<label>URL <input name="url" required placeholder="http://10.0.0.5:8000" autocomplete="off" /></label>
        <${FieldError} error=${error} field="url" />`}
      <label>Model id <input name="model_id" defaultValue=${w.model_id || ""} placeholder="discovered when empty" /></label>
      <${FieldError} error=${error} field="model_id" />
      <label>Type
        <select name="worker_type">
          ${TYPES.map((t) => html`<option value=${t} selected=${t === (w.worker_type || "regular")}>${t}</option>`)}
        </select>
      </label>
      <${FieldError} error=${error} field="worker_type" />
      <label>Runtime <input name="runtime" defaultValue=${w.runtime || ""} placeholder="sglang, vllm, ..." /></label>
      <${FieldError} error=${error} field="runtime" />
      <label>Priority <input name="priority" inputmode="numeric" defaultValue=${w.priority ?? ""} placeholder="50" /></label>
      <${FieldError} error=${error} field="priority" />
      <label>Labels <input name="labels" defaultValue=${pairsText(w.labels)} placeholder="zone=a, gpu=h100" /></label>
      <${FieldError} error=${error} field="labels" />
      <label>API key
        <input name="api_key" type="password" autocomplete="new-password"
          placeholder=${w.has_api_key ? "set; leave empty to keep it" : "none"} />
      </label>
      <${FieldError} error=${error} field="api_key" />
      <${FieldError} error=${error} />
      <div class="form-actions">
        <button type="submit" data-action=${adding ? "add" : "save"} disabled=${busy}>${adding ? "Add" : "Save"}</button>
        ${onCancel && html`<button type="button" data-action="cancel" onClick=${onCancel}>Cancel</button>`}
      </div>
    </form>
  `;
}
