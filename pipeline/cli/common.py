"""Options and helpers every command shares."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer

StoreOpt = Annotated[
    Optional[Path],
    typer.Option("--store", help="Store root (default $LLMC_HOME or ~/.cache/llmc).", show_default=False),
]
def _output_path(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("is empty: name the output folder or file")
    return value


OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Output path.", callback=_output_path)]
RemoteOpt = Annotated[
    Optional[str],
    typer.Option("--remote", help="Team cache: s3://bucket/prefix or file:///path (default $LLMC_REMOTE, "
                                  "then $LLMC_HOME/config.toml).", show_default=False),
]
ReadOnlyOpt = Annotated[bool, typer.Option("--remote-read-only", help="Fetch from the remote, never push.")]
# what llmc chat and llmc serve run
ModelArg = Annotated[str, typer.Argument(help="Folder with mlc-chat-config.json and the converted weights.")]
ModelLibOpt = Annotated[Optional[str], typer.Option("--model-lib", help="Compiled library; default: compile "
                                                    "just in time through the store.")]
RunDeviceOpt = Annotated[str, typer.Option("--device", help="Where the model runs.")]


@dataclass
class Session:
    """One CLI invocation, carried as typer's context object: when it began (so the summary line's time
    covers imports and hashing too) and the store given before the command (`llmc --store DIR cmd`)."""
    started: float = field(default_factory=time.monotonic)
    store: Path | None = None


def session(ctx: typer.Context) -> Session:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Session()
    return root.obj


def open_store(ctx: typer.Context, path: Path | None, remote: str | None = None, read_only: bool = False):
    """The store, with its remote tier if one is configured (flag, $LLMC_REMOTE, config.toml)."""
    from llmc.errors import UserError
    from llmc.store import Store
    from llmc.store.config import remote_settings

    store = Store(path if path is not None else session(ctx).store)
    try:
        url, read_only = remote_settings(store.root, remote, read_only)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:  # a path the file system refuses (too long, a file in the way, no permission)
        raise UserError(f"cannot use the store at {store.root}: {exc.strerror}") from None
    if url:
        from llmc.graph import progress
        from llmc.store.remote import RemoteUnavailable, open_remote

        try:
            store.remote = open_remote(url, read_only)
        except RemoteUnavailable as exc:
            raise UserError(str(exc)) from None
        store.remote.progress = progress.task
    return store


def engine_loader(ctx: typer.Context, model: str, model_lib: str | None, device: str, store: Path | None,
                  remote: str | None, read_only: bool, **engine_options):
    """A function that opens the MLCEngine `llmc chat` and `llmc serve` run, once the model folder, the
    library and the store have been checked (those errors come now, before any loading)."""
    import functools

    from llmc import devices
    from llmc.errors import UserError
    from llmc.runtime.engine import MLCEngine

    if not (Path(model) / "mlc-chat-config.json").is_file():
        raise UserError(f"{model} has no mlc-chat-config.json (run llmc gen_config)")
    if model_lib is not None and not Path(model_lib).is_file():
        raise UserError(f"--model-lib {model_lib} does not exist")
    devices.require_runnable(device)
    return functools.partial(MLCEngine, model, model_lib=model_lib, device=device,
                             store=open_store(ctx, store, remote, read_only), **engine_options)


def open_engine(ctx: typer.Context, *args, **kwargs):
    return engine_loader(ctx, *args, **kwargs)()
