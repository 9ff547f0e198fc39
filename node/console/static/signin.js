// Sign-in, three ways: an admin's username and password (POST /api/admin/login, a JWT),
// a managed API key, or an identity provider's token pasted in. The root is
// [data-view=signin]; the reason it shows (an expired session, a sign-out) is the text of
// its [data-message] element.
import { html, useState } from "./lib/html.js";
import { api, apiAs, ApiError } from "./lib/api.js";
import { setSession, signInMessage } from "./lib/session.js";
import { FieldError, useAction } from "./lib/forms.js";

const MODES = [
  { id: "admin", title: "Admin" },
  { id: "key", title: "API key" },
  { id: "idp", title: "IdP token" },
];
const MAX_SECRET = 8192; // longer than any key or token the node accepts

export function SignIn() {
  const [mode, setMode] = useState("admin");
  const [run, { busy, error }] = useAction();
  const message = signInMessage();
  const submit = (event) => {
    event.preventDefault();
    const form = Object.fromEntries(new FormData(event.currentTarget));
    run(() => signIn(mode, form));
  };
  return html`<section class="signin" data-view="signin">
    <h1>meshgate console</h1>
    ${message ? html`<p class="notice" data-message="">${message}</p>` : null}
    <nav class="modes">
      ${MODES.map(
        (m) => html`<button
          type="button"
          class=${m.id === mode ? "active" : ""}
          data-action=${`mode-${m.id}`}
          onClick=${() => setMode(m.id)}
        >
          ${m.title}
        </button>`,
      )}
    </nav>
    <form key=${mode} onSubmit=${submit} autocomplete="off">
      ${mode === "admin" ? AdminFields(error) : null}
      ${mode === "key" ? SecretField("apiKey", "Managed API key", error) : null}
      ${mode === "idp" ? SecretField("token", "Identity provider token (JWT)", error) : null}
      <${FieldError} error=${error} field="form" />
      <button type="submit" data-action="signin" disabled=${busy}>Sign in</button>
    </form>
  </section>`;
}

function AdminFields(error) {
  return html`<label>Username
      <input name="username" autocomplete="username" required maxlength="256" />
    </label>
    <${FieldError} error=${error} field="username" />
    <label>Password
      <input name="password" type="password" autocomplete="current-password" maxlength="1024" />
    </label>
    <${FieldError} error=${error} field="password" />`;
}

function SecretField(name, label, error) {
  return html`<label>${label}
      <input name=${name} type="password" required maxlength=${MAX_SECRET} autocomplete="off" />
    </label>
    <${FieldError} error=${error} field=${name} />`;
}

async function signIn(mode, form) {
  if (mode === "admin") {
    const answer = await api("POST", "/api/admin/login", {
      username: String(form.username ?? ""),
      password: String(form.password ?? ""),
    });
    const user = answer.user ?? {};
    setSession({
      token: answer.token,
      kind: "admin",
      name: user.subject ?? String(form.username), // the username, not the display name
      tenant: null,
      admin: true,
      expires_at: typeof user.exp === "number" ? user.exp : null,
    });
    return;
  }
  const field = mode === "key" ? "apiKey" : "token";
  const secret = String(form[field] ?? "").trim();
  setSession({ token: secret, kind: mode, ...(await identify(secret, field)) });
}

// Who a key or token is, asked of the API with that credential.
async function identify(secret, field) {
  const asked = (method, path, body) =>
    apiAs(secret, method, path, body).catch((e) => {
      if (e instanceof ApiError && e.field === null && e.status === 401) e.field = field;
      throw e;
    });
  const who = await asked("GET", "/api/whoami");
  if (!who.admin && !who.tenant) {
    throw new ApiError(403, "this credential is neither an admin's nor a tenant user's", null, field);
  }
  return {
    name: who.name,
    tenant: who.admin ? null : who.tenant,
    admin: Boolean(who.admin),
    expires_at: typeof who.expiresAt === "number" ? who.expiresAt : null,
  };
}
