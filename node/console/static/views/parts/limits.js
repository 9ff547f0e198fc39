// Quota limits (node/limits/quotas.py Limits): shown as text, entered as five optional
// positive integers. The API checks them; its error names the `limits` field.
import { html } from "../../lib/html.js";
import { FieldError } from "../../lib/forms.js";

export const LIMIT_FIELDS = [
  ["requestsPerMinute", "requests/min"],
  ["requestsPerHour", "requests/h"],
  ["tokensPerHour", "tokens/h"],
  ["burst", "burst/s"],
  ["maxConcurrent", "concurrent"],
];

const SNAKE = {
  requests_per_minute: "requestsPerMinute",
  requests_per_hour: "requestsPerHour",
  tokens_per_hour: "tokensPerHour",
  max_concurrent: "maxConcurrent",
};

export function limitsText(limits) {
  const entries = Object.entries(limits || {}).filter(([, v]) => v !== null && v !== undefined);
  if (!entries.length) return "none";
  const label = Object.fromEntries(LIMIT_FIELDS);
  return entries.map(([k, v]) => `${label[SNAKE[k] || k] || k} ${v}`).join(", ");
}

// The limits a form holds, or null when none was filled in. A value that is not a whole
// number is sent as text, so the API's own message says what to fix.
export function limitsFrom(form, prefix = "limits.") {
  const limits = {};
  for (const [field] of LIMIT_FIELDS) {
    const raw = String(form.get(prefix + field) ?? "").trim();
    if (raw) limits[field] = /^[0-9]+$/.test(raw) ? Number(raw) : raw;
  }
  return Object.keys(limits).length ? limits : null;
}

// The five limits as inputs named `prefix + field`, in a fieldset headed `legend`, with the
// API's error about them (it names the field `limits`); `values`: the current limits
// (snake_case or camelCase), shown as the inputs' defaults.
export function LimitsInputs({ legend = "Limits", prefix = "limits.", values = {}, error = null }) {
  const current = Object.fromEntries(Object.entries(values || {}).map(([k, v]) => [SNAKE[k] || k, v]));
  return html`
    <fieldset>
      <legend>${legend}</legend>
      <div class="limits-inputs">
        ${LIMIT_FIELDS.map(
          ([field, label]) => html`
            <label>${label}
              <input name=${prefix + field} defaultValue=${current[field] ?? ""} inputmode="numeric" size="7" autocomplete="off" />
            </label>
          `,
        )}
      </div>
    </fieldset>
    <${FieldError} error=${error} field="limits" />
  `;
}
