// A new secret (a created or rotated key), shown once: in a dialog with a copy button,
// kept only in the dialog's state, and gone from the page when the dialog closes.
import { html, useState } from "../../lib/html.js";

export function ShownOnce({ title, secret, onClose }) {
  const [copied, setCopied] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied("Copied.");
    } catch {
      setCopied("Copying was refused by the browser: select the key and copy it.");
    }
  };
  return html`
    <div class="dialog-backdrop">
      <div class="dialog" role="dialog" aria-modal="true" data-dialog="secret">
        <h3>${title}</h3>
        <p>This is the only time the key is shown: copy it now.</p>
        <code class="secret" data-secret="">${secret}</code>
        <div class="dialog-actions">
          <button type="button" data-action="copy" onClick=${copy}>Copy</button>
          <button type="button" data-action="close" onClick=${onClose}>Done</button>
        </div>
        ${copied && html`<p class="hint" data-copied="">${copied}</p>`}
      </div>
    </div>
  `;
}
