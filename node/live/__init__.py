"""Live control-state changes for WebSocket clients (`GET /ws`).

`feed` fans the node's applied-command stream out to per-client bounded
queues; `visibility` decides, as pure functions, which changes a caller may
see and strips secrets from them. The HTTP side is `node/api/live.py`.
"""

from node.live.feed import Client, Feed
from node.live.visibility import Viewer, change_message, may_see

__all__ = ["Client", "Feed", "Viewer", "change_message", "may_see"]
