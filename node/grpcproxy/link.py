"""What serving a request needs of one gRPC worker, kept behind one small interface.

The worker client (channels, discovery, health) provides it; this package only
calls the engine's stub and reads the worker's tokenizer and limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from node.text.tokenizer import TextTokenizer


@dataclass(frozen=True)
class EngineModel:
    """What the engine said of its model (`GetModelInfo`)."""

    max_context_length: int | None = None
    eos_token_ids: tuple[int, ...] = field(default_factory=tuple)


class EngineLink(Protocol):
    """One gRPC worker as the forwarder sees it."""

    @property
    def stub(
        self,
    ) -> Any: ...  # sglang_scheduler_pb2_grpc.SglangSchedulerStub on a grpc.aio channel

    @property
    def tokenizer(self) -> TextTokenizer: ...

    @property
    def model(self) -> EngineModel: ...

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]: ...  # sent with every call (credential)


@dataclass(frozen=True)
class StaticLink:
    """A link made of known parts (tests, and a client that has them at hand)."""

    stub: Any
    tokenizer: TextTokenizer
    model: EngineModel = EngineModel()
    metadata: tuple[tuple[str, str], ...] = ()
