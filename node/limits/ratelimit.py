"""Cluster-wide request rate limits: token buckets, in Redis when there is one.

The rules (`scope -> rate, burst`) are control state and arrive through Raft;
the counters are not: one Raft write per request would put consensus on the
hot path. So counters live either

* in Redis (`RedisBuckets`, in the node's `HotStore`): every node takes
  tokens from the same buckets with one atomic script call, so the limit is
  exact across the cluster; or
* locally, when no Redis is configured or it is unreachable: each of the N
  nodes enforces a 1/N share of every rule with its own bucket, which needs no
  coordination at all and bounds the cluster's overshoot (see
  docs/rate-limits.md).

A Redis failure or timeout never reaches the caller: that request and the
following ones are decided locally while the store's probe retries Redis once
a second and switches back when it answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.limits.hot_store import HotStore
from node.limits.ratelimit_redis import RedisBuckets

GLOBAL_SCOPE = "*"
_EPSILON = 1e-9  # float slack so a bucket refilled to exactly 1.0 admits


@dataclass(frozen=True, slots=True)
class Rule:
    scope: str  # "*" = global (all inference requests), else a model id
    rate: float  # requests per second allowed across the whole cluster (> 0)
    burst: float  # bucket capacity across the cluster (>= 1)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate limit {self.scope!r}: rate must be > 0, got {self.rate}")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError(f"rate limit {self.scope!r}: burst must be >= 1, got {self.burst}")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a request could be admitted (0 if allowed)
    scope: str | None  # the scope that refused (None if allowed)


ALLOWED = Decision(True, 0.0, None)


class _LocalBucket:
    """This node's share of one rule: refill rate/n, capacity max(1, burst/n)."""

    __slots__ = ("capacity", "n", "refill", "stamp", "tokens")

    def __init__(self, rule: Rule, n: int, now: float) -> None:
        self.n = n
        self.refill = rule.rate / n
        self.capacity = max(1.0, rule.burst / n)
        self.tokens = self.capacity
        self.stamp = now

    def advance(self, rule: Rule, n: int, now: float) -> float:
        """Refill up to `now` at the current share, then adopt the share for `n` nodes."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.refill)
            self.stamp = now
        if n != self.n:
            self.reshape(rule, n)
        return self.tokens

    def reshape(self, rule: Rule, n: int) -> None:
        """Keep the fill ratio under a new capacity (never above it)."""
        capacity = max(1.0, rule.burst / n)
        self.tokens = min(capacity, self.tokens * capacity / self.capacity)
        self.capacity = capacity
        self.refill = rule.rate / n
        self.n = n

    def wait(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.refill)


class _Scope:
    """One rule and everything the limiter keeps about it."""

    __slots__ = ("admitted", "args", "bucket", "key", "rejected", "rule")

    def __init__(self, rule: Rule, key: str, n: int, now: float) -> None:
        self.rule = rule
        self.key = key
        self.args = (repr(float(rule.rate)), repr(float(rule.burst)))
        self.bucket = _LocalBucket(rule, n, now)
        self.admitted = 0
        self.rejected = 0

    def replace_rule(self, rule: Rule, n: int, now: float) -> None:
        self.bucket.advance(self.rule, n, now)
        self.rule = rule
        self.args = (repr(float(rule.rate)), repr(float(rule.burst)))
        self.bucket.reshape(rule, n)


class RateLimiter:
    def __init__(
        self,
        node_name: str,
        store: HotStore | None,  # None: counters are always local
        nodes: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
        key_prefix: str = "meshgate:rl:",
    ) -> None:
        self.node_name = node_name
        self._nodes = nodes
        self._clock = clock
        self._key_prefix = key_prefix
        self._scopes: dict[str, _Scope] = {}
        self._global: _Scope | None = None
        self.store = store if store is not None else HotStore(None)
        self._redis = RedisBuckets(self.store) if self.store.configured else None

    def set_rules(self, rules: Mapping[str, Rule]) -> None:
        """Adopt replicated rules; unchanged scopes keep their buckets and counters.

        A scope whose rule changed keeps its bucket's fill ratio under the new
        capacity (no free burst for editing a rule); removed scopes are dropped.
        """
        for scope, rule in rules.items():
            if scope != rule.scope:
                raise ValueError(f"rate limit rule keyed {scope!r} is for scope {rule.scope!r}")
        n, now = self._node_count(), self._clock()
        scopes: dict[str, _Scope] = {}
        for scope, rule in rules.items():
            state = self._scopes.get(scope)
            if state is None:
                state = _Scope(rule, self._key_prefix + scope, n, now)
            elif state.rule != rule:
                state.replace_rule(rule, n, now)
            scopes[scope] = state
        self._scopes = scopes
        self._global = scopes.get(GLOBAL_SCOPE)

    @property
    def has_rules(self) -> bool:
        """Is any rule in force? (Asked first on every request: most meshes have none.)"""
        return bool(self._scopes)

    async def admit(self, model: str | Sequence[str | None] | None) -> Decision:
        """Admit if every rule for `model` (and "*") has a token; then take one from each.

        `model` may name several models (a deployment whose workers serve more than one):
        then the rule of every one of them applies, so no rule can be dodged."""
        if not self._scopes:
            return ALLOWED
        applicable = self._applicable(model)
        if not applicable:
            return ALLOWED
        redis = self._redis
        if redis is not None and self.store.healthy:
            keys = [s.key for s in applicable]
            result = await redis.take(keys, [a for s in applicable for a in s.args])
            if result is not None:
                return _settle(applicable, *result)
        return self._admit_local(applicable)

    def _applicable(self, model: str | Sequence[str | None] | None) -> tuple[_Scope, ...]:
        models = (model,) if model is None or isinstance(model, str) else model
        own = [
            scope
            for m in dict.fromkeys(models)
            if m is not None and m != GLOBAL_SCOPE and (scope := self._scopes.get(m)) is not None
        ]
        return tuple(own) if self._global is None else (self._global, *own)

    def _admit_local(self, scopes: tuple[_Scope, ...]) -> Decision:
        n, now = self._node_count(), self._clock()
        waits: list[float] = []
        for s in scopes:
            short = s.bucket.advance(s.rule, n, now) < 1.0 - _EPSILON
            waits.append(s.bucket.wait() if short else 0.0)
        allowed = not any(waits)
        if allowed:
            for s in scopes:
                s.bucket.tokens -= 1.0
        return _settle(scopes, allowed, waits)

    def _node_count(self) -> int:
        return max(1, int(self._nodes()))

    @property
    def backend(self) -> str:
        return self.store.backend

    @property
    def redis_healthy(self) -> bool | None:
        return self.store.healthy if self.store.configured else None

    def stats(self) -> dict[str, Any]:
        n = self._node_count()
        return {
            "node": self.node_name,
            "backend": self.backend,
            "nodes": n,
            "scopes": {scope: _scope_stats(s, n) for scope, s in self._scopes.items()},
        }


def _settle(scopes: tuple[_Scope, ...], allowed: bool, waits: list[float]) -> Decision:
    """Count the outcome; a refusal names the scope that will take longest (all must admit)."""
    if allowed:
        for s in scopes:
            s.admitted += 1
        return ALLOWED
    worst = 0
    for i, s in enumerate(scopes):
        if waits[i] > 0.0:
            s.rejected += 1
            if waits[i] > waits[worst]:
                worst = i
    return Decision(False, waits[worst], scopes[worst].rule.scope)


def _scope_stats(s: _Scope, n: int) -> dict[str, Any]:
    return {
        "rate": s.rule.rate,
        "burst": s.rule.burst,
        "local_share_rate": s.rule.rate / n,
        "local_share_burst": max(1.0, s.rule.burst / n),
        "admitted": s.admitted,
        "rejected": s.rejected,
    }
