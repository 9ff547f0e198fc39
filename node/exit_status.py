"""What `meshgate serve` exits with, named once: supervisors act on these numbers.

A supervisor (systemd `Restart=always`, a Kubernetes pod) restarts a node that
exits, whatever the status, unless told otherwise. A rolling restart relies on
that; a cluster shutdown must defeat it, so it has a status of its own, and the
shipped systemd unit lists it in `RestartPreventExitStatus=` (a unit test keeps
the two equal).
"""

from __future__ import annotations

from typing import Final

# Drained and stopped: SIGTERM, a shutdown plan naming this node, a rolling-restart step.
# A supervisor brings the node back.
STOPPED: Final = 0
# A bad setting, a port that cannot be bound, a node name taken by a live node: the
# node must not run as configured. (Python's own uncaught errors exit 1.)
REFUSED: Final = 2
# A committed cluster shutdown (`meshgate cluster shutdown cluster`): stay down.
CLUSTER_SHUTDOWN: Final = 3
