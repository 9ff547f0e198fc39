// Who the signed-in caller is, as the management API decides it (node/api/manage.py), so a
// view offers exactly the actions the API allows:
// - admins manage everything;
// - a managed key may create keys if its role is minter, and may rotate or revoke only
//   itself and the keys minted from it (managed_key);
// - another tenant credential (an IdP token) manages its tenant's keys if its role is
//   minter; the page cannot read that role, so it offers the actions and shows the API's
//   answer.
import { useState, useEffect } from "../../lib/html.js";
import { api } from "../../lib/api.js";

async function whoIs(session) {
  if (session.admin) return { admin: true, tenant: null, keyId: null, canMint: true };
  if (session.kind !== "key") return { admin: false, tenant: session.tenant, keyId: null, canMint: true };
  const found = await api("POST", "/api/validate-api-key", { apiKey: session.token });
  const own = found.valid ? await api("GET", `/api/keys/${encodeURIComponent(found.keyId)}`) : null;
  return {
    admin: false,
    tenant: found.tenant ?? session.tenant,
    keyId: own ? own.id : null,
    canMint: own ? own.role === "minter" && !own.publishedModel : false,
  };
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
