"""This node's own OpenAPI 3.1 document, generated from the route table.

Every route of `node.api.catalog` is one operation (the `/models/{name}/{tail}`
catch-all is documented by the one tail clients use, `/models/{name}/predict`),
with its audience's tag and security (`x-meshgate-auth` names the audience),
the request body the handler accepts, and the statuses it answers with. So the
document lists exactly the installed routes, by construction.

Two error shapes exist (`node.errors`): `{"error": {"type", "code", "message",
"param"}}` (`Error`) on every route except the management API under `/api/`,
which answers `{"error": text, "details": any, "code": text}` (`ApiError`).

Where a value set lives in code (worker types, routing policies and their
parameters, runtime settings, name and key patterns), the schema is built from
it; the rest (field lists, quota names, runtime bounds) is compared with the
code by tests/integration/test_fuzz_control_plane.py.

`document()` and `body()` build it on first use, not at import: a node starts
without paying for it.
"""

from node.api.docs import PATH
from node.api.openapi.document import body, document
from node.api.openapi.schemas import QUOTA_FIELDS, RUNTIME_BOUNDS

__all__ = ["PATH", "QUOTA_FIELDS", "RUNTIME_BOUNDS", "body", "document"]
