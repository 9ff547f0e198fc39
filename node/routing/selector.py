"""Per-model policy instances, kept in step with the replicated policy records.

Each model gets its own policy object (so a cache-aware tree or a round-robin
counter is per model). The record that applies is the model's own, else the
mesh default ("*"), else this node's `--policy`; an instance is rebuilt only
when that record's version changes.
"""

from __future__ import annotations

from typing import Any

from mesh.state import DEFAULT_POLICY_KEY
from node.routing.base import Policy
from node.routing.registry import make_policy


class PolicySelector:
    def __init__(self, fallback_policy: str) -> None:
        self.fallback = {"policy": fallback_policy, "params": {}, "version": 0}
        self._records: dict[str, dict[str, Any]] = {}
        self._deployments: dict[str, dict[str, Any]] = {}  # "tenant/name" -> policy record
        # By (model, role): a prefill or decode half has its own instance of the model's policy.
        self._instances: dict[tuple[str, str], tuple[int, str, Policy]] = {}

    def sync(self, records: dict[str, dict[str, Any]]) -> None:
        self._records = records

    def sync_deployments(self, models: dict[str, dict[str, Any]]) -> None:
        """Model deployments that name their own policy (keyed by "tenant/name")."""
        self._deployments = {
            ref: {
                "policy": m["policy"],
                "params": m.get("policy_params") or {},
                "version": m["version"],
            }
            for ref, m in models.items()
            if m.get("policy")
        }

    def record_for(self, model: str | None) -> dict[str, Any]:
        records = self._records
        key = model or ""
        return (
            records.get(key)
            or self._deployments.get(key)
            or records.get(DEFAULT_POLICY_KEY)
            or self.fallback
        )

    def policy_for(self, model: str | None, role: str = "") -> Policy:
        """The model's policy; `role` ("prefill", "decode") names a separate instance of it,
        so each half of a PD pair keeps its own counters and cache tree."""
        key = (model or "", role)
        record = self.record_for(model)
        cached = self._instances.get(key)
        if cached is not None and cached[0] == record["version"] and cached[1] == record["policy"]:
            return cached[2]
        policy = make_policy(record["policy"], record.get("params") or {})
        self._instances[key] = (record["version"], record["policy"], policy)
        return policy

    def pair_for(self, model: str | None) -> tuple[Policy, Policy]:
        """The model's policy for the prefill half and for the decode half of a PD pair."""
        return self.policy_for(model, "prefill"), self.policy_for(model, "decode")

    def forget(self, worker_id: str) -> None:
        for _, _, policy in self._instances.values():
            policy.forget(worker_id)
