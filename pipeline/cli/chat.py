"""`llmc chat`: talk to a compiled model in the terminal."""
from __future__ import annotations


import typer

from llmc.cli.common import ModelArg, ModelLibOpt, ReadOnlyOpt, RemoteOpt, RunDeviceOpt, StoreOpt, open_engine

COMMAND = "chat"
HELP = "Chat with a model interactively (/help inside lists the commands)."


def command(
    ctx: typer.Context,
    model: ModelArg,
    model_lib: ModelLibOpt = None,
    device: RunDeviceOpt = "cpu",
    store: StoreOpt = None,
    remote: RemoteOpt = None,
    remote_read_only: ReadOnlyOpt = False,
) -> None:
    from llmc.runtime.chat import run

    run(open_engine(ctx, model, model_lib, device, store, remote, remote_read_only))
