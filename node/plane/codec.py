"""The plane link's messages to and from the objects the rest of a node uses.

Both sides use these, so a field crosses the link one way only: a RaftStatus
becomes a `Status` and back, a CommitError a `SubmitError` and back."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Final

import orjson

from mesh.raft import CommitError, PeerStatus, RaftSettings, RaftStatus
from node.plane.facts import PlaneFacts, WorkerFacts
from node.plane.generated import node_pb2 as pb

# Bumped whenever either side could misread the other (a field's meaning, not a new field).
PLANE_VERSION: Final = "1"
VERSION_KEY: Final = "meshgate-plane-version"  # trailing metadata of a refusal
MAX_MESSAGE_BYTES: Final = 256 * 1024 * 1024  # a snapshot of a large state, whole


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def _opt(message: Any, name: str) -> Any:
    """The field's value; None for an `optional` field that was not set."""
    if message.DESCRIPTOR.fields_by_name[name].has_presence and not message.HasField(name):
        return None
    return getattr(message, name)


# RaftStatus's fields that cross as they are (peers are messages of their own; when the
# status was read is the reader's own business).
_STATUS_FIELDS: Final = tuple(
    f.name for f in dataclasses.fields(RaftStatus) if f.name not in ("peers", "updated_at")
)


def status_message(status: RaftStatus, state_applied_index: int) -> pb.Status:
    return pb.Status(
        **{name: getattr(status, name) for name in _STATUS_FIELDS},
        peers=[pb.Peer(**dataclasses.asdict(peer)) for peer in status.peers],
        state_applied_index=state_applied_index,
    )


def raft_status(message: pb.Status) -> RaftStatus:
    return RaftStatus(
        **{name: _opt(message, name) for name in _STATUS_FIELDS},
        peers=tuple(
            PeerStatus(**{f.name: _opt(peer, f.name) for f in dataclasses.fields(PeerStatus)})
            for peer in message.peers
        ),
    )


def settings_message(settings: RaftSettings) -> pb.PlaneSettings:
    return pb.PlaneSettings(
        self_address=settings.self_address,
        peers=list(settings.peers),
        commit_timeout=settings.commit_timeout,
        clock_skew_allowance=settings.clock_skew_allowance,
        stale_after=settings.stale_after,
    )


def raft_settings(message: pb.PlaneSettings, data_dir: Path) -> RaftSettings:
    """A RaftSettings with what the control process's says; no password, ever."""
    return RaftSettings(
        data_dir=data_dir,
        self_address=_opt(message, "self_address"),
        peers=tuple(message.peers),
        commit_timeout=message.commit_timeout,
        clock_skew_allowance=message.clock_skew_allowance,
        stale_after=message.stale_after,
    )


def facts_message(facts: PlaneFacts) -> pb.Facts:
    return pb.Facts(
        workers={
            wid: pb.WorkerFacts(health=w.health, reason=w.reason, breaker=w.breaker)
            for wid, w in facts.workers.items()
        },
        draining=facts.draining,
        shutting_down=facts.shutting_down,
    )


def plane_facts(message: pb.Facts) -> PlaneFacts:
    return PlaneFacts(
        workers={
            wid: WorkerFacts(health=w.health, reason=w.reason, breaker=w.breaker)
            for wid, w in message.workers.items()
        },
        draining=message.draining,
        shutting_down=message.shutting_down,
    )


def error_message(error: CommitError) -> pb.SubmitError:
    return pb.SubmitError(
        reason=error.reason,
        message=str(error),
        outcome=error.outcome,
        request_id=error.request_id,
        retry_after=error.retry_after,
        timed_out=error.timed_out,
        expires_at=error.expires_at,
    )


def commit_error(message: pb.SubmitError) -> CommitError:
    return CommitError(
        message.reason,
        message.message,
        message.retry_after,
        outcome=message.outcome,
        request_id=_opt(message, "request_id"),
        expires_at=_opt(message, "expires_at"),
        timed_out=message.timed_out,
    )
