"""The forwarder's links, from the node's gRPC worker clients (node/grpc_workers): the
worker's stub and credential, its loaded tokenizer (with the worker's chat template)
and what `GetModelInfo` said of its model. A worker whose tokenizer is not loaded yet
has no link: the forwarder leaves it out, as it does a worker that is not routable."""

from __future__ import annotations

from node.grpc_workers.workers import GrpcWorkers
from node.grpcproxy.forward import LinkSource
from node.grpcproxy.link import EngineLink, EngineModel, StaticLink
from node.workers.worker import Worker


def links_from(workers: GrpcWorkers) -> LinkSource:
    def link(worker: Worker) -> EngineLink | None:
        client = workers.client(worker.id)
        if client is None or client.tokenizer is None:
            return None
        info = client.model_info
        model = EngineModel(
            max_context_length=(info.max_context_length if info else 0) or None,
            eos_token_ids=tuple(info.eos_token_ids) if info else (),
        )
        return StaticLink(client.stub, client.tokenizer, model, client.metadata)

    return link
