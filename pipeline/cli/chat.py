"""`llmc chat`: talk to a compiled model in the terminal."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmc.cli.common import ReadOnlyOpt, RemoteOpt, StoreOpt, open_store

COMMAND = "chat"
HELP = "Chat with a model interactively (/help inside lists the commands)."


def command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Folder with mlc-chat-config.json and the converted weights.")],
    model_lib: Annotated[Optional[str], typer.Option("--model-lib", help="Compiled library; default: "
                                                     "compile just in time through the store.")] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    store: StoreOpt = None,
    remote: RemoteOpt = None,
    remote_read_only: ReadOnlyOpt = False,
) -> None:
    from pathlib import Path

    from llmc import devices
    from llmc.errors import UserError
    from llmc.runtime.chat import run
    from llmc.runtime.engine import MLCEngine

    if not (Path(model) / "mlc-chat-config.json").is_file():
        raise UserError(f"{model} has no mlc-chat-config.json (run llmc gen_config)")
    if model_lib is not None and not Path(model_lib).is_file():
        raise UserError(f"--model-lib {model_lib} does not exist")
    devices.require_runnable(device)
    engine = MLCEngine(model, model_lib=model_lib, device=device, store=open_store(ctx, store, remote, remote_read_only))
    run(engine)
