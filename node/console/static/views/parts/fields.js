// The pieces every form of these views repeats: an input named as its API field with the
// API's error beside it, a labelled control of another kind, and the form's buttons with
// the error that names no field.
import { html } from "../../lib/html.js";
import { FieldError } from "../../lib/forms.js";

// A text input `name` (the API's field name); other attributes go to the input.
export function Input({ label, name, error, ...attrs }) {
  return html`
    <label>${label} <input name=${name} autocomplete="off" ...${attrs} /></label>
    <${FieldError} error=${error} field=${name} />
  `;
}

// A labelled control (a select, a fieldset of inputs) whose errors name `name`.
export function Field({ label, name, error, children }) {
  return html`
    <label>${label} ${children}</label>
    <${FieldError} error=${error} field=${name} />
  `;
}

// The form-level error, the submit button (`action`: its data-action) and Cancel.
export function FormActions({ error, busy, action, label, onCancel }) {
  return html`
    <${FieldError} error=${error} />
    <div class="form-actions">
      <button type="submit" data-action=${action} disabled=${busy}>${label}</button>
      ${onCancel && html`<button type="button" data-action="cancel" onClick=${onCancel}>Cancel</button>`}
    </div>
  `;
}
