"""The echo worker's HTTP server: route table, fault gates, control routes, lifecycle.

Inference routes are wrapped once, at startup, in a closure that counts the
request, tracks it as in flight, applies injected latency and failures, and
turns `BadRequest` into a 400. Everything else (health, info, metrics and the
`/_faults` and `/_stats` control routes) is never subject to faults, so tests
can always see and repair the worker they broke.
"""

from __future__ import annotations

import asyncio
import hmac
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from node.echo.httpio import BadRequest, error_response, json_response, read_json_object
from node.echo.native_routes import NativeRoutes
from node.echo.openai_routes import Handler, OpenAIRoutes
from node.echo.pd import serve_bootstrap
from node.echo.state import WorkerState

ResponseHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]
Middleware = Callable[[web.Request, Any], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 64 * 1024 * 1024
SHUTDOWN_TIMEOUT_S = 1.0
MAX_TOTAL_TOKENS = 65536


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("meshgate")
    except (ImportError, PackageNotFoundError):
        return "0"


def _bad_request(exc: BadRequest) -> web.Response:
    return error_response(400, exc.message, "invalid_request_error", exc.param)


def guard_inference(state: WorkerState, route: str, handler: Handler) -> Handler:
    """`handler` behind the fault gates, with counting and in-flight tracking."""
    faults = state.faults
    failure_status = state.injector.failure_status
    count = state.count_request

    async def guarded(request: web.Request) -> web.StreamResponse:
        count(route)
        state.in_flight += 1
        try:
            if faults.latency_ms > 0.0:
                await asyncio.sleep(faults.latency_ms / 1000.0)
            status = failure_status()
            if status is not None:
                return error_response(status, "injected failure", "server_error", None, "injected")
            return await handler(request)
        except BadRequest as exc:
            return _bad_request(exc)
        finally:
            state.in_flight -= 1

    return guarded


def counted(state: WorkerState, route: str, handler: Handler) -> Handler:
    """`handler` with its request counted; no faults apply."""
    count = state.count_request

    async def wrapped(request: web.Request) -> web.StreamResponse:
        count(route)
        return await handler(request)

    return wrapped


class ControlRoutes:
    """Health, engine info, metrics and the `/_faults` and `/_stats` test switches."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        config = state.config
        self._model_info = orjson.dumps(
            {
                "model_path": config.model,
                "tokenizer_path": config.model,
                "is_generation": True,
                "model_type": "echo",
                "architectures": ["EchoForCausalLM"],
                "served_model_name": config.model,
            }
        )
        self._server_info = orjson.dumps(
            {
                "version": f"echo-{_version()}",
                "model_path": config.model,
                "tokenizer_path": config.model,
                "served_model_name": config.model,
                "name": config.name,
                "max_total_num_tokens": MAX_TOTAL_TOKENS,
                "context_length": MAX_TOTAL_TOKENS,
                "max_tokens_default": config.max_tokens_default,
                "embedding_dim": config.embedding_dim,
                "start_time": config.started,
                "api_key": config.api_key,
                # SGLang's names: what a PD router reads to pair this worker.
                "disaggregation_mode": config.disaggregation_mode or "null",
                "disaggregation_bootstrap_port": config.bootstrap_port,
            }
        )

    def counted_routes(self) -> dict[str, Handler]:
        return {
            "/health": self.health,
            "/health_generate": self.health,
            "/get_model_info": self.model_info,
            "/get_server_info": self.server_info,
            "/get_load": self.load,
            "/flush_cache": self.flush_cache,
            "/metrics": self.metrics,
        }

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=self.state.faults.health_status)

    async def model_info(self, request: web.Request) -> web.Response:
        return web.Response(body=self._model_info, content_type="application/json")

    async def server_info(self, request: web.Request) -> web.Response:
        return web.Response(body=self._server_info, content_type="application/json")

    async def load(self, request: web.Request) -> web.Response:
        load = self.state.in_flight
        return json_response(
            {"load": load, "num_reqs": load, "num_waiting_reqs": 0, "num_tokens": 0}
        )

    async def flush_cache(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "flushed": True})

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.state.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_faults(self, request: web.Request) -> web.Response:
        return json_response(self.state.faults.to_dict())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            changes = await read_json_object(request)
            self.state.faults.update(changes)
        except BadRequest as exc:
            return _bad_request(exc)
        except ValueError as exc:
            return error_response(400, str(exc), "invalid_request_error")
        return json_response(self.state.faults.to_dict())

    async def get_stats(self, request: web.Request) -> web.Response:
        return json_response(self.state.stats())

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.state.reset_stats()
        return json_response(self.state.stats())


def _credential_gate(accepted: tuple[str, ...]) -> Middleware:
    """Refuse (401) every route but `/health` and the test switches without a credential."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path != "/health" and not path.startswith("/_"):
            given = request.headers.get("Authorization", "")
            if not any(hmac.compare_digest(given, value) for value in accepted):
                return error_response(401, "missing or wrong credential", "authentication_error")
        return await handler(request)  # type: ignore[no-any-return]

    return gate


def _redirect_gate(state: WorkerState) -> Middleware:
    """The `redirect_to` fault: answer 302 on every route but the test switches."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        target = state.faults.redirect_to
        if target is not None and not request.path.startswith("/_"):
            state.redirected += 1
            return web.Response(status=302, headers={"Location": target + request.path_qs})
        return await handler(request)  # type: ignore[no-any-return]

    return gate


def build_app(state: WorkerState) -> web.Application:
    """The aiohttp application serving `state`'s worker."""
    accepted = state.config.accepted_authorizations
    gates = [_redirect_gate(state)]
    if accepted:
        gates.append(_credential_gate(accepted))
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=gates)
    openai_routes = OpenAIRoutes(state)
    native_routes = NativeRoutes(state)
    control = ControlRoutes(state)
    inference = {**openai_routes.inference_routes(), **native_routes.inference_routes()}
    pd = state.pd
    if pd is not None:
        inference = {path: pd.gate(path, h) for path, h in inference.items()}
        app.on_cleanup.append(lambda _: pd.close())
    routes = [web.post(path, guard_inference(state, path, h)) for path, h in inference.items()]
    for path, handler in control.counted_routes().items():
        method = web.post if path == "/flush_cache" else web.get
        routes.append(method(path, counted(state, path, handler)))
    routes += [
        web.get("/v1/models", counted(state, "/v1/models", openai_routes.models)),
        web.get("/v1/models/{model:.+}", counted(state, "/v1/models/{model}", openai_routes.model)),
        web.get("/_faults", control.get_faults),
        web.post("/_faults", control.set_faults),
        web.get("/_stats", control.get_stats),
        web.post("/_stats/reset", control.reset_stats),
    ]
    if pd is not None and pd.mode == "prefill":
        routes.append(web.get("/bootstrap/{room}", pd.bootstrap))
    app.add_routes(routes)
    app.on_response_prepare.append(_identity_headers(state.config.name))
    return app


def _identity_headers(name: str) -> ResponseHook:
    """A response-prepare hook naming the worker and echoing the request id."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers["x-echo-worker"] = name
        request_id = request.headers.get("x-request-id")
        if request_id is not None:
            headers["x-request-id"] = request_id

    return add_headers


async def serve(state: WorkerState) -> int:
    """Serve until SIGINT or SIGTERM; return the process exit code."""
    stop = _stop_event()  # installed first, so an early SIGTERM still exits cleanly
    config = state.config
    runner = web.AppRunner(
        build_app(state), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            return _cannot_listen(config.name, f"{config.host}:{config.port}", exc)
        port = _bound_port(runner, config.port)
        try:
            bootstrap = await _start_bootstrap(state, port)
        except OSError as exc:
            return _cannot_listen(config.name, f"bootstrap port {config.bootstrap_port}", exc)
        print(
            f"echo-worker {config.name} listening on http://{config.host}:{port} "
            f"model={config.model}",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            if bootstrap is not None:
                await bootstrap.cleanup()
    finally:
        await runner.cleanup()
    return 0


def _cannot_listen(name: str, where: str, exc: OSError) -> int:
    """Say on stderr why the worker cannot start; its exit status."""
    print(f"echo-worker {name}: cannot listen on {where}: {exc}", file=sys.stderr, flush=True)
    return 1


async def _start_bootstrap(state: WorkerState, port: int) -> web.AppRunner | None:
    """A prefill's bootstrap server on its own port (None: not needed); OSError when it
    cannot listen."""
    config, pd = state.config, state.pd
    wanted = config.bootstrap_port
    if pd is None or pd.mode != "prefill" or wanted is None or wanted == port:
        return None
    return await serve_bootstrap(pd, config.host, wanted)


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    """The port actually bound, which differs from `requested` when that is 0."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (handlers live as long as the loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
