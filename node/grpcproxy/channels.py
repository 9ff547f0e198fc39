"""Links to gRPC workers until the worker client provides them: one channel per worker
URL, and the tokenizer its model's workers name (`tokenizer_path`, or one registered
under the model's name). The worker client's discovery replaces this in one place:
the `links` the node gives `EngineForwarder`."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import grpc
from smg_grpc_proto.generated import sglang_scheduler_pb2_grpc as pb_grpc

from node.grpcproxy.link import EngineLink, EngineModel, StaticLink
from node.text.resolve import TokenizerNotFound, TokenizerResolver, TokenizerUnavailable
from node.workers.worker import Worker

log = logging.getLogger(__name__)
# Large prompts of ids and long answers exceed gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


class ChannelLinks:
    def __init__(self, tokenizers: TokenizerResolver) -> None:
        self._tokenizers = tokenizers
        self._channels: dict[str, grpc.aio.Channel] = {}

    def __call__(self, worker: Worker) -> EngineLink | None:
        if worker.connection_mode != "grpc" or not worker.model_id:
            return None
        try:
            tokenizer = self._tokenizers.for_model(worker.model_id)
        except (TokenizerNotFound, TokenizerUnavailable) as exc:
            log.debug("no tokenizer for gRPC worker %s: %s", worker.id, exc)
            return None
        channel = self._channels.get(worker.url)
        if channel is None:
            address = urlsplit(worker.url).netloc
            channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[worker.url] = channel
        model = EngineModel(max_context_length=tokenizer.max_model_len)
        return StaticLink(pb_grpc.SglangSchedulerStub(channel), tokenizer, model)

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
