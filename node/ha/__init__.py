"""This node's part in the mesh: announcing itself, watching its peers, draining and stopping."""
