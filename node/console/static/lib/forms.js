// Form helpers: the API's error next to the field it names, a busy state for actions,
// and the confirmation every destructive action goes through.
import { html, useState, useRef, useEffect, useCallback } from "./html.js";

// The error's message beside `field` when the error names it; with field "form" (or none),
// the form-level line for an error that names no field.
export function FieldError({ error, field }) {
  if (!error) return null;
  const named = error.field ?? null;
  const here = field === undefined || field === "form" ? named === null : named === field;
  if (!here) return null;
  return html`<p class="error" role="alert" data-error=${field ?? "form"}>${error.message}</p>`;
}

// [run, {busy, error}]: run(async () => ...) marks busy, keeps the failure as `error`
// (cleared by the next run) and returns the call's result (undefined when it failed).
export function useAction() {
  const [state, setState] = useState({ busy: false, error: null });
  const mounted = useRef(true);
  useEffect(() => () => (mounted.current = false), []);
  const run = useCallback(async (fn) => {
    setState({ busy: true, error: null });
    try {
      const result = await fn();
      if (mounted.current) setState({ busy: false, error: null });
      return result;
    } catch (error) {
      if (mounted.current) setState({ busy: false, error });
      return undefined;
    }
  }, []);
  return [run, state];
}

export function Confirm({ text, onYes, onNo }) {
  return html`<div class="confirm" role="alertdialog" data-confirm="">
    <p>${text}</p>
    <button type="button" class="danger" data-action="confirm" onClick=${onYes}>Yes</button>
    <button type="button" data-action="cancel" onClick=${onNo}>No</button>
  </div>`;
}

// [ask(text, action), dialog]: ask shows a Confirm; Yes runs the action. Put `dialog` in
// the view's markup where the question should appear.
export function useConfirm() {
  const [pending, setPending] = useState(null);
  const ask = useCallback((text, action) => setPending({ text, action }), []);
  const dialog = pending
    ? html`<${Confirm}
        text=${pending.text}
        onYes=${() => {
          setPending(null);
          pending.action();
        }}
        onNo=${() => setPending(null)}
      />`
    : null;
  return [ask, dialog];
}
