"""A node started without --enable-wasm in a mesh that has WASM modules registered.

It cannot run them, and a request it served would skip them: in a mixed mesh an
operator's auth module would be bypassed through that one node. So while any enabled
module that may not be skipped (`on_error: "fail"`) is registered, such a node is not
ready (a load balancer takes it out) and answers inference requests 503 naming the
flag; it keeps running and serving the control plane, so an operator can restart it with
the flag, or disable the modules. Modules registered with `on_error: "continue"` are
skipped, as a node with the flag skips them while they load. This module loads no
wasmtime: it only reads the replicated records.
"""

from __future__ import annotations

from typing import Any

from mesh.state import ControlState
from node.errors import ApiError

FLAG = "--enable-wasm"


def unskippable(state: ControlState) -> list[str]:
    """The names of the enabled modules a request must not pass without."""
    if not state.wasm_modules:  # asked on every inference request: most meshes have none
        return []
    return sorted(
        record["name"]
        for record in state.wasm_modules.values()
        if record["enabled"] and record.get("on_error", "fail") != "continue"
    )


def readiness_problem(state: ControlState) -> str | None:
    """Why a node without the flag is not ready, or None (`node.readiness`)."""
    names = unskippable(state)
    if not names:
        return None
    return (
        f"the mesh has WASM modules that may not be skipped ({_shown(names)}) and this node "
        f"was started without {FLAG}"
    )


def refuse_without_wasm(state: ControlState) -> None:
    """Refuse an inference request on a node without the flag while it would skip a
    module that may not be skipped."""
    names = unskippable(state)
    if names:
        raise ApiError(
            503,
            f"this node was started without {FLAG}, so it cannot run the mesh's WASM "
            f"middleware ({_shown(names)}); send the request to another node, or restart "
            f"this one with {FLAG}",
            code="WASM_NOT_ENABLED",
            extra={"modules": names[:8]},
        )


def off_report(state: ControlState) -> dict[str, dict[str, Any]]:
    """This node's view of every module for its /ha/local report: off."""
    reason = f"this node was started without {FLAG}: it runs no module"
    view = {"state": "off", "reason": reason, "updated_at": None, "breaker": None}
    return {module_id: dict(view) for module_id in state.wasm_modules}


def _shown(names: list[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
