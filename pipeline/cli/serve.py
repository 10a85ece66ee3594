"""`llmc serve`: an OpenAI-compatible HTTP server over a compiled model (runtime/server.py)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmc.cli.common import ModelArg, ModelLibOpt, ReadOnlyOpt, RemoteOpt, RunDeviceOpt, StoreOpt, engine_loader

COMMAND = "serve"
HELP = "Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /metrics)."


def command(
    ctx: typer.Context,
    model: ModelArg,
    model_lib: ModelLibOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    max_num_sequence: Annotated[int, typer.Option("--max-num-sequence", help="Sequences decoded together.")] = 4,
    api_key: Annotated[Optional[str], typer.Option("--api-key", help="Require Authorization: Bearer KEY.")] = None,
    device: RunDeviceOpt = "cpu",
    store: StoreOpt = None,
    remote: RemoteOpt = None,
    remote_read_only: ReadOnlyOpt = False,
) -> None:
    from llmc.errors import NotAvailable, UserError

    if not 1 <= port <= 65535 or max_num_sequence < 1:
        raise UserError("--port must be in 1..65535 and --max-num-sequence at least 1")
    try:
        import uvicorn

        from llmc.runtime.server import create_app
    except ImportError as exc:
        raise NotAvailable(f"llmc serve needs {exc.name} (pip install 'llmc[serve]')") from None
    load = engine_loader(ctx, model, model_lib, device, store, remote, remote_read_only,
                         max_num_sequence=max_num_sequence)
    failures: list[Exception] = []

    def stop(exc: Exception) -> None:
        failures.append(exc)
        server.should_exit = True

    app = create_app(load, api_key=api_key, on_load_failure=stop)

    class Server(uvicorn.Server):
        """At the first signal the app is told it is shutting down: new requests on open connections get
        503 while the running ones finish."""

        def handle_exit(self, sig, frame):
            app.state.serving.closing = True
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    server.run()
    if failures:  # the model could not load: the same one-line error and exit code as llmc chat's
        raise failures[0] if isinstance(failures[0], UserError) else UserError(str(failures[0]))
