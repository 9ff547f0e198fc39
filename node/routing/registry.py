"""Policy names, their parameters, and the one place that validates and builds policies.

The control plane calls `validate_policy` before writing a policy choice into
replicated state, so validation is pure and deterministic: the same input
yields the same normalised parameters (defaults filled) or the same error on
every node. `make_policy` builds a policy from already validated or raw input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from node.routing.base import Policy, PolicyError, PolicyParams
from node.routing.cache_aware import CacheAwarePolicy
from node.routing.consistent_hashing import ConsistentHashingPolicy
from node.routing.least_load import LeastLoadPolicy
from node.routing.power_of_two import PowerOfTwoPolicy
from node.routing.prefix_hash import PrefixHashPolicy
from node.routing.random_policy import RandomPolicy
from node.routing.round_robin import RoundRobinPolicy

POLICY_NAMES: tuple[str, ...] = (
    "round_robin",
    "random",
    "power_of_two",
    "cache_aware",
    "consistent_hashing",
    "prefix_hash",
    "least_load",
)


INVALID: Any = object()  # what ParamSpec.normalise returns for an unacceptable value


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter: its kind ("int", "float" or "seed"), default and inclusive bounds."""

    kind: str
    default: Any
    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        if self.kind == "seed":
            return "an integer or null"
        noun = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            return f"{noun} in [{_fmt(self.low)}, {_fmt(self.high)}]"
        if self.low is not None:
            return f"{noun} >= {_fmt(self.low)}"
        return noun

    def normalise(self, value: Any) -> Any:
        """The canonical value, or `INVALID` when `value` is not acceptable."""
        if self.kind == "seed":
            return value if value is None or _is_int(value) else INVALID
        if self.kind == "int":
            if not _is_int(value):
                return INVALID
        elif _is_int(value):
            value = float(value)
        elif not isinstance(value, float) or not math.isfinite(value):
            return INVALID
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            return INVALID
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


_VIRTUAL_NODES = ParamSpec("int", 160, 1, 1000)
_SEED = ParamSpec("seed", None)

PARAMS: dict[str, dict[str, ParamSpec]] = {
    "round_robin": {},
    "random": {"seed": _SEED},
    "power_of_two": {"seed": _SEED},
    "cache_aware": {
        "cache_threshold": ParamSpec("float", 0.3, 0.0, 1.0),
        "balance_abs_threshold": ParamSpec("int", 64, 0, None),
        "balance_rel_threshold": ParamSpec("float", 1.5, 1.0, None),
        "max_tree_size": ParamSpec("int", 2**19, 1, 2**31),
        "chunk_chars": ParamSpec("int", 32, 1, 4096),
        "max_prompt_chars": ParamSpec("int", 16384, 1, 2**24),
    },
    "consistent_hashing": {"virtual_nodes": _VIRTUAL_NODES},
    "prefix_hash": {
        "virtual_nodes": _VIRTUAL_NODES,
        "prefix_chars": ParamSpec("int", 256, 1, 2**20),
    },
    "least_load": {},
}

_FACTORIES: dict[str, Callable[..., Policy]] = {
    "round_robin": RoundRobinPolicy,
    "random": RandomPolicy,
    "power_of_two": PowerOfTwoPolicy,
    "cache_aware": CacheAwarePolicy,
    "consistent_hashing": ConsistentHashingPolicy,
    "prefix_hash": PrefixHashPolicy,
    "least_load": LeastLoadPolicy,
}

assert set(PARAMS) == set(_FACTORIES) == set(POLICY_NAMES)


def validate_policy(name: str, params: Mapping[str, Any] | None = None) -> PolicyParams:
    """Normalised parameters (every parameter present, defaults filled) or PolicyError."""
    specs = PARAMS.get(name) if isinstance(name, str) else None
    if specs is None:
        raise PolicyError(
            f"unknown routing policy {name!r}; valid policies: {', '.join(POLICY_NAMES)}"
        )
    if params is None:
        params = {}
    elif not isinstance(params, Mapping):
        raise PolicyError(
            f"policy {name!r}: parameters must be an object, got {type(params).__name__}"
        )
    for key in params:
        if key not in specs:
            allowed = ", ".join(sorted(specs)) if specs else "none"
            raise PolicyError(
                f"policy {name!r}: unknown parameter {key!r}; allowed parameters: {allowed}"
            )
    normalised: PolicyParams = {}
    for key, spec in specs.items():
        if key not in params:
            normalised[key] = spec.default
            continue
        value = spec.normalise(params[key])
        if value is INVALID:
            raise PolicyError(
                f"policy {name!r}: parameter {key!r} must be {spec.describe()}, got {params[key]!r}"
            )
        normalised[key] = value
    return normalised


def make_policy(name: str, params: Mapping[str, Any] | None = None) -> Policy:
    """A new policy instance; raises PolicyError for an unknown name or bad parameters."""
    normalised = validate_policy(name, params)
    return _FACTORIES[name](**normalised)
