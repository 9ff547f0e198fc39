// Reading a submitted form into an API body: only what was filled in is sent, so the
// API's defaults (and, on an edit, the current values) stand for the rest.

// A trimmed text field, or undefined when empty.
export function text(form, name) {
  const value = String(form.get(name) ?? "").trim();
  return value === "" ? undefined : value;
}

// A whole-number field; anything else is sent as typed, so the API's message says why.
export function integer(form, name) {
  const value = text(form, name);
  return value !== undefined && /^-?[0-9]+$/.test(value) ? Number(value) : value;
}

// A comma-separated list, or undefined when empty.
export function list(form, name) {
  const value = text(form, name);
  return value === undefined ? undefined : value.split(",").map((s) => s.trim()).filter(Boolean);
}

// `key=value` pairs, one a line or comma-separated. A pair without "=" is a problem
// the form shows next to the field (an error shaped like the API's, naming it).
export function pairs(form, name) {
  const value = text(form, name);
  if (value === undefined) return undefined;
  const found = {};
  for (const item of value.split(/[\n,]/).map((s) => s.trim()).filter(Boolean)) {
    const at = item.indexOf("=");
    if (at < 1) throw { message: `${name}: write each as key=value (got "${item}")`, field: name };
    found[item.slice(0, at).trim()] = item.slice(at + 1).trim();
  }
  return found;
}

// The body without the fields left undefined.
export function defined(body) {
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

// `labels` as the table shows them.
export function pairsText(map) {
  const entries = Object.entries(map || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(", ") : "";
}
