"""`llmc compile`: build a model library for a device."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llmc.cli.common import OutputOpt, ReadOnlyOpt, RemoteOpt, StoreOpt, open_store, session

COMMAND = "compile"
HELP = "Compile a model library (lower -> codegen -> link) for a device."


def prestart_lower() -> None:
    """A cold compile's lower child imports TVM (1.5 s) while this process reads the model and its keys
    (called before typer parses the command line, which takes another 0.5 s)."""
    from llmc.graph import isolated

    isolated.prestart("llmc.stages.lower", "llmc.compiler.lowering")


def command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="mlc-chat-config.json or the folder holding it.")],
    output: OutputOpt,
    device: Annotated[str, typer.Option("--device", help="cpu (alias llvm), cpu:generic.")] = "cpu",
    host: Annotated[Optional[str], typer.Option("--host", help="LLVM target triple of the host.")] = None,
    opt: Annotated[str, typer.Option("--opt", help="O0..O3 (O1: exact; O2: int8 activations "
                                                     "where the CPU has AVX2), or flag=0|1;...")] = "O2",
    overrides: Annotated[str, typer.Option("--overrides", help='"context_window_size=1024;..."')] = "",
    quantization: Annotated[Optional[str], typer.Option("--quantization")] = None,
    model_type: Annotated[Optional[str], typer.Option("--model-type")] = None,
    system_lib_prefix: Annotated[str, typer.Option("--system-lib-prefix")] = "auto",
    store: StoreOpt = None,
    remote: RemoteOpt = None,
    remote_read_only: ReadOnlyOpt = False,
) -> None:
    prestart_lower()
    from llmc.commands.compile import compile_model
    from llmc.graph.progress import terminal

    with terminal():
        result = compile_model(model, Path(output), open_store(ctx, store, remote, remote_read_only),
                               started=session(ctx).started, device=device, host=host, opt=opt,
                               overrides=overrides, quant=quantization, model_type=model_type,
                               prefix=system_lib_prefix)
    result.report()
