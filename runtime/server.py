"""`llmc serve`: an OpenAI-compatible HTTP API over MLCEngine, on FastAPI and uvicorn.

A thin shell: request bodies are pydantic models passed on to the engine's create() (which validates the
values and raises BadRequestError); responses are the engine's objects as JSON, streams as server-sent
events. Every error is OpenAI-shaped JSON ({"error": {"message", "type", "param", "code"}}) with a 4xx
status; nothing a client sends produces a 500.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool

from llmc.runtime.library import PAGE_SIZE
from llmc.runtime.protocol import BadRequestError


class Body(BaseModel):
    """The fields the server itself reads; the rest go to the engine's create() as they are."""
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    stream: StrictBool = False


class ChatBody(Body):
    messages: list[Any]  # typed, not Any: an explicit null must be a 422, not dropped as an unset option


class CompletionBody(Body):
    prompt: str | list[Any]


STATIC = Path(__file__).parent / "static"  # the chat page at GET / (no build step, no CDN)
MAX_BODY = 8 << 20  # bytes of a request body (413 beyond: a prompt that size cannot fit any context anyway)


class Serving:
    """What the app serves: nothing while the model loads (a loader runs on its own thread from startup),
    the engine once it is up, nothing again once shutdown begins. Requests meanwhile get 503."""

    def __init__(self, engine_or_loader, served_name: str | None):
        self.engine = self.metrics = self.failure = None
        self.closing = False
        self.loaded = threading.Event()
        self._loader = engine_or_loader if callable(engine_or_loader) else None
        self.name = served_name
        if self._loader is None:
            self._up(engine_or_loader)

    def _up(self, engine) -> None:
        self.name = self.name or engine.model
        self.metrics = Metrics(engine)
        self.engine = engine
        self.loaded.set()

    def start(self, on_failure=None) -> None:
        if self._loader is None or self.loaded.is_set():
            return

        def load():
            try:
                self._up(self._loader())
            except Exception as exc:  # noqa: BLE001 - reported by the caller (llmc serve exits with it)
                self.failure = exc
                self.loaded.set()
                if on_failure is not None:
                    on_failure(exc)

        threading.Thread(target=load, name="llmc-load-model", daemon=True).start()

    def unavailable(self) -> str | None:
        if self.closing:
            return "the server is shutting down"
        if self.failure is not None:
            return f"the model failed to load: {self.failure}"
        return None if self.engine is not None else "the model is loading; retry shortly"


def create_app(engine, api_key: str | None = None, served_name: str | None = None, max_waiting: int = 64,
               on_load_failure=None):
    """The app over an engine, or over a function that loads one (called on a thread at startup, so the
    port answers 503 while a model loads, as llama-server does). max_waiting requests may wait for room
    in the scheduler, more get 429."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    serving = Serving(engine, served_name)

    @asynccontextmanager
    async def lifespan(_):
        serving.start(on_load_failure)
        yield
        serving.closing = True

    # the OpenAPI schema is served (/openapi.json) for clients and fuzzers; no docs pages (they need a CDN)
    app = FastAPI(title="llmc", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.serving = serving

    def error(status: int, message: str, kind: str, param: str | None = None, code: str | None = None):
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                            status_code=status)

    @app.exception_handler(BadRequestError)
    async def bad_request(_, exc: BadRequestError):
        return error(400, str(exc), "invalid_request_error", exc.param)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = first.get("loc", ())[1:]  # (field, ...): below a union's field come type names, not a path
        where = ".".join(str(x) for x in loc) or "body"
        return error(422, f"{where}: {first.get('msg', 'invalid request body')}", "invalid_request_error",
                     str(loc[0]) if loc else None)

    @app.exception_handler(HTTPException)
    async def http_error(_, exc: HTTPException):
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(exc.status_code, "invalid_request_error")
        return error(exc.status_code, str(exc.detail), kind)

    @app.middleware("http")
    async def authorize(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/") and \
                request.headers.get("authorization") != f"Bearer {api_key}":
            return error(401, "missing or wrong API key (Authorization: Bearer KEY)", "authentication_error",
                         code="invalid_api_key")
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return error(413, f"request body over {MAX_BODY} bytes", "invalid_request_error")
        if (request.url.path.startswith("/v1/") or request.url.path == "/health") and (why := serving.unavailable()):
            return error(503, why, "unavailable_error", code="model_unavailable")
        return await call_next(request)

    def check_model(body: Body):
        if body.model not in (None, serving.name):
            return error(404, f"model {body.model!r} is not served here (this server serves {serving.name!r})",
                         "not_found_error", "model", "model_not_found")
        return None

    async def run(create, body: Body):
        refused = check_model(body)
        if refused is not None:
            return refused
        if len(serving.engine.scheduler.waiting) >= max_waiting:
            return error(429, f"{max_waiting} requests are already waiting; retry later", "rate_limit_error",
                         code="server_busy")
        kwargs = body.model_dump(exclude_none=True, exclude={"model"})
        started = time.perf_counter()
        result = await run_in_threadpool(create, **kwargs)
        if not body.stream:
            serving.metrics.requests.inc()
            return JSONResponse(result.model_dump())
        return StreamingResponse(serving.metrics.stream(started, _events(result)), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatBody):
        return await run(serving.engine.chat.completions.create, body)

    @app.post("/v1/completions")
    async def completions(body: CompletionBody):
        return await run(serving.engine.completions.create, body)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": serving.name, "object": "model", "created": int(time.time()),
                                            "owned_by": "llmc"}]}

    @app.get("/")
    async def chat_page():
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.get("/static/app.js")
    async def chat_script():
        return Response((STATIC / "app.js").read_text(), media_type="text/javascript")

    @app.get("/health")
    async def health():
        return {"status": "ok"}  # while unavailable, the middleware answers 503

    @app.get("/metrics")
    async def prometheus():
        text = serving.metrics.render() if serving.metrics is not None else ""
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app


def _events(chunks):
    for chunk in chunks:
        yield f"data: {json.dumps(chunk.model_dump(), ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


class Metrics:
    """Prometheus metrics of one server: queue, running sequences, KV tokens promised, tokens, latencies."""

    def __init__(self, engine):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry()
        scheduler = engine.scheduler
        Gauge("llmc_queue_depth", "requests waiting for room", registry=registry).set_function(
            lambda: len(scheduler.waiting))
        Gauge("llmc_running_sequences", "sequences being prefilled or decoded", registry=registry).set_function(
            lambda: sum(len(j.seq_ids) for j in list(scheduler.running)))
        Gauge("llmc_kv_pages_used", "KV cache pages promised to running requests", registry=registry).set_function(
            lambda: -(-scheduler.reserved // PAGE_SIZE))
        Gauge("llmc_prompt_tokens_total", "prompt tokens prefilled", registry=registry).set_function(
            lambda: engine.stats["prefill_tokens"])
        Gauge("llmc_generated_tokens_total", "tokens decoded", registry=registry).set_function(
            lambda: engine.stats["decode_tokens"])
        self.requests = Counter("llmc_requests", "completed requests", registry=registry)
        self.ttft = Histogram("llmc_time_to_first_token_seconds", "from request to first streamed token",
                              registry=registry)
        self.itl = Histogram("llmc_inter_token_latency_seconds", "between streamed tokens", registry=registry,
                             buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))

    def stream(self, started: float, events):
        last = None
        for event in events:
            now = time.perf_counter()
            if last is None:
                self.ttft.observe(now - started)
            else:
                self.itl.observe(now - last)
            last = now
            yield event
        self.requests.inc()

    def render(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()
