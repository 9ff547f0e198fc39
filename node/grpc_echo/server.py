"""Serve the simulator's Scheduler as `sglang.grpc.scheduler.SglangScheduler`, and
as `vllm.grpc.engine.VllmEngine` on the same port (`vllm.py` translates).

The handlers are registered by hand (not with the generated
`add_SglangSchedulerServicer_to_server`) so that every request deserializer keeps
the raw bytes for the record; the message types are the pinned stubs' own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import grpc
from smg_grpc_proto.generated import common_pb2
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb
from smg_grpc_proto.generated import vllm_engine_pb2 as vpb

from node.echo.pd import serve_bootstrap
from node.grpc_echo import vllm
from node.grpc_echo.scheduler import Scheduler, keep_raw

SERVICE = "sglang.grpc.scheduler.SglangScheduler"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
log = logging.getLogger("meshgate.grpc_echo")


def _unary(handler: Any, request: Any, response: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=keep_raw(request),
        response_serializer=response.SerializeToString,
    )


def _stream(handler: Any, request: Any, response: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_stream_rpc_method_handler(
        handler,
        request_deserializer=keep_raw(request),
        response_serializer=response.SerializeToString,
    )


def _common(s: Scheduler) -> dict[str, grpc.RpcMethodHandler]:
    """The RPCs both services take with common.proto's messages."""
    return {
        "FlushCache": _unary(
            s.flush_cache, common_pb2.FlushCacheRequest, common_pb2.FlushCacheResponse
        ),
        "GetTokenizer": _stream(
            s.get_tokenizer, common_pb2.GetTokenizerRequest, common_pb2.GetTokenizerChunk
        ),
    }


def service_handler(s: Scheduler) -> grpc.GenericRpcHandler:
    """The scheduler's RPCs; the ones it does not implement answer UNIMPLEMENTED."""
    handlers = {
        "Generate": _stream(s.generate, pb.GenerateRequest, pb.GenerateResponse),
        "Embed": _unary(s.embed, pb.EmbedRequest, pb.EmbedResponse),
        "HealthCheck": _unary(s.health_check, pb.HealthCheckRequest, pb.HealthCheckResponse),
        "Abort": _unary(s.abort, pb.AbortRequest, pb.AbortResponse),
        "GetModelInfo": _unary(s.get_model_info, pb.GetModelInfoRequest, pb.GetModelInfoResponse),
        "GetServerInfo": _unary(
            s.get_server_info, pb.GetServerInfoRequest, pb.GetServerInfoResponse
        ),
        "GetLoads": _unary(s.get_loads, pb.GetLoadsRequest, pb.GetLoadsResponse),
        **_common(s),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def vllm_handler(engine: vllm.VllmEngine, s: Scheduler) -> grpc.GenericRpcHandler:
    """The vLLM engine service's RPCs, over the same engine."""
    handlers = {
        "Generate": _stream(engine.generate, vpb.GenerateRequest, vpb.GenerateResponse),
        "Embed": _unary(engine.embed, vpb.EmbedRequest, vpb.EmbedResponse),
        "HealthCheck": _unary(engine.health_check, vpb.HealthCheckRequest, vpb.HealthCheckResponse),
        "Abort": _unary(engine.abort, vpb.AbortRequest, vpb.AbortResponse),
        "GetModelInfo": _unary(
            engine.get_model_info, vpb.GetModelInfoRequest, vpb.GetModelInfoResponse
        ),
        "GetServerInfo": _unary(
            engine.get_server_info, vpb.GetServerInfoRequest, vpb.GetServerInfoResponse
        ),
        "GetLoads": _unary(engine.get_loads, vpb.GetLoadsRequest, vpb.GetLoadsResponse),
        **_common(s),
    }
    return grpc.method_handlers_generic_handler(vllm.SERVICE, handlers)


async def serve(scheduler: Scheduler) -> int:
    """Serve until SIGINT or SIGTERM; 0 on a clean stop, 1 when a port cannot be had."""
    config = scheduler.config
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    engine = vllm.VllmEngine(scheduler)
    server.add_generic_rpc_handlers((service_handler(scheduler), vllm_handler(engine, scheduler)))
    address = f"{config.host}:{config.port}"
    server.add_insecure_port(address)
    bootstrap = None
    if (
        scheduler.rooms is not None
        and config.bootstrap_port
        and config.disaggregation_mode == "prefill"
    ):
        try:  # the prefill's bootstrap server (HTTP), which a decode asks for its rooms
            bootstrap = await serve_bootstrap(scheduler.rooms, config.host, config.bootstrap_port)
        except OSError as exc:
            log.error("cannot listen on bootstrap port %s: %s", config.bootstrap_port, exc)
            return 1
    await server.start()
    log.info("grpc-echo-worker serving %s on %s", config.model_id, address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(asyncio.CancelledError):
        await stop.wait()
    await server.stop(grace=1.0)
    if bootstrap is not None:
        await bootstrap.cleanup()
    if scheduler.rooms is not None:
        await scheduler.rooms.close()
    scheduler.recorder.close()
    return 0
