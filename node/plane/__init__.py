"""A node's processes (`--processes N`): one control process, N data-plane processes.

The plane link: `control_side.PlaneServer` serves `meshgate.v1.NodePlane`
(proto/meshgate/v1/node.proto) on a Unix socket in the data dir; `data_side.PlaneReplica`
follows it and stands in for `MeshRaft` in a data-plane process. See
docs/architecture.md, "The plane link".

The processes: `control_process.py` runs the Raft member and `supervisor.py`, which
starts, restarts and drains the data-plane children (`data_process.py`); `parent.py`
ties a child to its control process; `handover.py` passes the requests a data-plane
process does not serve itself to the control process.
"""
