"""`llmc serve`: an OpenAI-compatible HTTP server over a compiled model (runtime/server.py)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmc.cli.common import ReadOnlyOpt, RemoteOpt, StoreOpt, open_engine

COMMAND = "serve"
HELP = "Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /metrics)."


def command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Folder with mlc-chat-config.json and the converted weights.")],
    model_lib: Annotated[Optional[str], typer.Option("--model-lib", help="Compiled library; default: "
                                                     "compile just in time through the store.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    max_num_sequence: Annotated[int, typer.Option("--max-num-sequence", help="Sequences decoded together.")] = 4,
    api_key: Annotated[Optional[str], typer.Option("--api-key", help="Require Authorization: Bearer KEY.")] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
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
    engine = open_engine(ctx, model, model_lib, device, store, remote, remote_read_only,
                         max_num_sequence=max_num_sequence)
    uvicorn.run(create_app(engine, api_key=api_key), host=host, port=port, log_level="warning")
