// Adding a worker (POST /workers) and editing one (PATCH /workers/{id}): one form, whose
// inputs are named as the API's fields, so the API's error shows next to the field it names.
// The worker's api_key is a password input, sent only when filled in and never shown back.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { useAction } from "../../lib/forms.js";
import { Input, Field, FormActions } from "./fields.js";
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
      ${adding && html`<${Input} label="URL" name="url" error=${error} required placeholder="http://10.0.0.5:8000" />`}
      <${Input} label="Model id" name="model_id" error=${error} defaultValue=${w.model_id || ""} placeholder="discovered when empty" />
      <${Field} label="Type" name="worker_type" error=${error}>
        <select name="worker_type">
          ${TYPES.map((t) => html`<option value=${t} selected=${t === (w.worker_type || "regular")}>${t}</option>`)}
        </select>
      <//>
      <${Input} label="Runtime" name="runtime" error=${error} defaultValue=${w.runtime || ""} placeholder="sglang, vllm, ..." />
      <${Input} label="Priority" name="priority" error=${error} inputmode="numeric" defaultValue=${w.priority ?? ""} placeholder="50" />
      <${Input} label="Labels" name="labels" error=${error} defaultValue=${pairsText(w.labels)} placeholder="zone=a, gpu=h100" />
      <${Input} label="API key" name="api_key" error=${error} type="password" autocomplete="new-password"
        placeholder=${w.has_api_key ? "set; leave empty to keep it" : "none"} />
      <${FormActions} error=${error} busy=${busy} action=${adding ? "add" : "save"} label=${adding ? "Add" : "Save"} onCancel=${onCancel} />
    </form>
  `;
}
