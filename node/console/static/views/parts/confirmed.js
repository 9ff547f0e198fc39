// One destructive action at a time, asked through the console's Confirm: `ask(text, act)`
// shows the question; on yes `act()` runs through useAction, so its failure shows as the
// API's message, and `after(result)` runs on success.
import { html, useState } from "../../lib/html.js";
import { Confirm, FieldError, useAction } from "../../lib/forms.js";

export function useConfirmed(after) {
  const [asked, setAsked] = useState(null);
  const [run, { busy, error }] = useAction();
  const ask = (text, act) => setAsked({ text, act });
  const yes = () => {
    const { act } = asked;
    setAsked(null);
    run(async () => after(await act()));
  };
  const dialog = html`
    ${asked && html`<${Confirm} text=${asked.text} onYes=${yes} onNo=${() => setAsked(null)} />`}
    <${FieldError} error=${error} />
  `;
  return { ask, dialog, busy };
}
