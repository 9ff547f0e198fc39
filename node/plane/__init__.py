"""The plane link: a node's control process feeds its data-plane processes (issue 15).

`control_side.PlaneServer` serves `meshgate.v1.NodePlane` (proto/meshgate/v1/node.proto)
on a Unix socket in the data dir; `data_side.PlaneReplica` follows it and stands in for
`MeshRaft` in a data-plane process. See docs/architecture.md, "The plane link".
"""
