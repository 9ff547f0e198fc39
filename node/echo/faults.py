"""Fault settings of the echo worker: the explicit gates tests use to break it.

Gateway tests need a backend that fails on demand: slow answers, error
statuses, streams that die halfway, a failing health check. The settings start
from command-line flags and can be changed at runtime through `POST /_faults`;
both paths validate with the same checks, so a bad value is rejected with a
message that names the setting.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_FAIL_STATUS = 500


def check_rate(value: Any) -> float:
    """A probability in [0, 1]."""
    rate = _finite_number(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value!r}")
    return rate


def check_status(value: Any) -> int:
    """An HTTP status code in [100, 599]."""
    status = _integer(value)
    if not 100 <= status <= 599:
        raise ValueError(f"must be an HTTP status between 100 and 599, got {value!r}")
    return status


def check_milliseconds(value: Any) -> float:
    """A non-negative, finite duration in milliseconds."""
    ms = _finite_number(value)
    if ms < 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return ms


def check_count(value: Any) -> int:
    """A non-negative integer."""
    count = _integer(value)
    if count < 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return count


def check_url(value: Any) -> str:
    """An absolute http(s) URL (where a redirect points)."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


def check_reported(value: Any) -> Any:
    """Any JSON scalar: what the worker claims as a usage count, absurd ones included."""
    if isinstance(value, dict | list):
        raise ValueError(f"must be a JSON number or string, got {value!r}")
    return value


def _finite_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"must be finite, got {value!r}")
    return number


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


# Settings that `null` may clear, and the checks of every settable field.
_NULLABLE = frozenset(
    {"fail_rate", "fail_status", "cut_stream_after", "redirect_to", "usage_total_tokens"}
)
_CHECKS = {
    "fail_rate": check_rate,
    "fail_status": check_status,
    "latency_ms": check_milliseconds,
    "token_delay_ms": check_milliseconds,
    "cut_stream_after": check_count,
    "health_status": check_status,
    "redirect_to": check_url,
    "usage_total_tokens": check_reported,
}


@dataclass(slots=True)
class FaultSettings:
    """What the worker does wrong, and how slowly.

    `fail_rate` None means "unset": then a set `fail_status` fails every
    inference request, and no `fail_status` fails none. A set `fail_rate`
    without `fail_status` fails with 500.
    """

    fail_rate: float | None = None
    fail_status: int | None = None
    latency_ms: float = 0.0
    token_delay_ms: float = 0.0
    cut_stream_after: int | None = None
    health_status: int = 200
    # Answer every route but the test switches with 302 to this URL.
    redirect_to: str | None = None
    # Report this as `usage.total_tokens` (negative, fractional, huge...) instead of the count.
    usage_total_tokens: Any = None

    @property
    def effective_fail_rate(self) -> float:
        if self.fail_rate is not None:
            return self.fail_rate
        return 1.0 if self.fail_status is not None else 0.0

    @property
    def effective_fail_status(self) -> int:
        return self.fail_status if self.fail_status is not None else DEFAULT_FAIL_STATUS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply `changes` all at once, or none of them if any is invalid (ValueError)."""
        validated = validate_changes(changes)
        for name, value in validated.items():
            setattr(self, name, value)


def validate_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Checked copies of `changes`; ValueError names the first bad setting."""
    validated: dict[str, Any] = {}
    for name, value in changes.items():
        check = _CHECKS.get(name)
        if check is None:
            known = ", ".join(sorted(_CHECKS))
            raise ValueError(f"unknown fault setting {name!r} (known: {known})")
        if value is None:
            if name not in _NULLABLE:
                raise ValueError(f"{name}: may not be null")
            validated[name] = None
            continue
        try:
            validated[name] = check(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return validated


class FaultInjector:
    """Decides, request by request, whether to fail; reproducible through its seed."""

    def __init__(self, settings: FaultSettings, seed: int = 0) -> None:
        self.settings = settings
        self._random = random.Random(seed).random

    def failure_status(self) -> int | None:
        """The status to fail this request with, or None to serve it."""
        rate = self.settings.effective_fail_rate
        if rate <= 0.0:
            return None
        if rate >= 1.0 or self._random() < rate:
            return self.settings.effective_fail_status
        return None
