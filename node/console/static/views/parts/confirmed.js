// A destructive action asked through the console's confirmation (lib/forms.js useConfirm),
// run through useAction so that its failure shows as the API's message: `ask(text, act)`;
// on yes `act()` runs, then `after(result)`. Put `dialog` where the question should appear.
import { html } from "../../lib/html.js";
import { FieldError, useAction, useConfirm } from "../../lib/forms.js";

export function useConfirmed(after) {
  const [question, dialogOf] = useConfirm();
  const [run, { error }] = useAction();
  const ask = (text, act) => question(text, () => run(async () => after(await act())));
  const dialog = html`${dialogOf}<${FieldError} error=${error} />`;
  return { ask, dialog };
}
