"""`llmc chat`: talk to a compiled model in the terminal."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmc.cli.common import ReadOnlyOpt, RemoteOpt, StoreOpt, open_engine

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
    from llmc.runtime.chat import run

    run(open_engine(ctx, model, model_lib, device, store, remote, remote_read_only))
