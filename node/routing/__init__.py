"""Routing policies: pick which healthy worker serves each request.

Use `make_policy(name, params)` to build one and `validate_policy` to check a
configuration before storing it; see `base` for the interface.
"""

from node.routing.base import Candidate, Policy, PolicyError, RequestFacts
from node.routing.registry import POLICY_NAMES, make_policy, validate_policy

__all__ = [
    "POLICY_NAMES",
    "Candidate",
    "Policy",
    "PolicyError",
    "RequestFacts",
    "make_policy",
    "validate_policy",
]
