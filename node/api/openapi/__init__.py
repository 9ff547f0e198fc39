"""`GET /openapi.json` (public): this node's own OpenAPI 3.1 document.

The document is plain Python data, built once when this module is imported and
served as pre-encoded bytes, so a request does no work. It describes what the
handlers really do: every installed route (the `/models/{name}/{tail}`
catch-all is described by the one tail clients use, `/models/{name}/predict`),
its audience (tag), who may call it (`security`, and `x-meshgate-auth` naming
the route group), the request bodies the handlers accept (unknown fields are
`additionalProperties: false` wherever the handler rejects them), and the
status codes they answer with.

Two error shapes exist (`node.errors`): `{"error": {"type", "code", "message",
"param"}}` (`Error`) on every route except the management API under `/api/`,
which answers `{"error": text, "details": any, "code": text}` (`ApiError`).

Where a value set lives in code (worker types, routing policies and their
parameters, runtime settings, name and key patterns), the schema is built from
it; the rest (field lists, quota names, runtime bounds) is compared with the
code by tests/integration/test_fuzz_control_plane.py.
"""

from node.api.openapi.document import DOCUMENT, PATH, install
from node.api.openapi.schemas import QUOTA_FIELDS, RUNTIME_BOUNDS

__all__ = ["DOCUMENT", "PATH", "QUOTA_FIELDS", "RUNTIME_BOUNDS", "install"]
