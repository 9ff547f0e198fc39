// Who the signed-in caller is, as the management API decides it (node/api/manage.py), so a
// view offers exactly the actions the API allows:
// - admins manage everything;
// - a managed key may create keys if its role is minter, and may rotate or revoke only
//   itself and the keys minted from it (managed_key);
// - another tenant credential (an IdP token) manages its tenant's keys if its role is
//   minter.
// The role comes from GET /api/whoami, a key's id from POST /api/validate-api-key.
import { useState, useEffect } from "../../lib/html.js";
import { api } from "../../lib/api.js";

async function whoIs(session) {
  if (session.admin) return { admin: true, tenant: null, keyId: null, canMint: true };
  const me = await api("GET", "/api/whoami");
  let keyId = null;
  let publication = false;
  if (session.kind === "key") {
    const found = await api("POST", "/api/validate-api-key", { apiKey: session.token });
    keyId = found.valid ? found.keyId : null;
    publication = Boolean(found.model); // a publication's key mints nothing
  }
  return { admin: false, tenant: me.tenant, keyId, canMint: ["admin", "minter"].includes(me.role) && !publication };
}

export function useCaller(session) {
  const [caller, setCaller] = useState(null);
  useEffect(() => {
    let live = true;
    whoIs(session).then(
      (found) => live && setCaller(found),
      () => live && setCaller({ admin: false, tenant: session.tenant, keyId: null, canMint: false }),
    );
    return () => {
      live = false;
    };
  }, [session.token]);
  return caller;
}

// May `caller` rotate or revoke `key`? `keys`: id -> key, for its chain of parents.
export function mayManage(caller, key, keys) {
  if (!caller) return false;
  if (caller.admin) return true;
  if (key.tenant !== caller.tenant) return false;
  if (caller.keyId === null) return caller.canMint;
  for (let id = key.id, hops = 0; id && hops < 100; id = keys[id]?.parent, hops++) {
    if (id === caller.keyId) return true;
  }
  return false;
}
