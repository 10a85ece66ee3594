"""Options and helpers every command shares."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

StoreOpt = Annotated[
    Optional[Path],
    typer.Option("--store", help="Store root (default $LLMC_HOME or ~/.cache/llmc).", show_default=False),
]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output path.")]
RemoteOpt = Annotated[
    Optional[str],
    typer.Option("--remote", help="Team cache: s3://bucket/prefix or file:///path (default $LLMC_REMOTE, "
                                  "then $LLMC_HOME/config.toml).", show_default=False),
]
ReadOnlyOpt = Annotated[bool, typer.Option("--remote-read-only", help="Fetch from the remote, never push.")]

_root_store: Path | None = None


def set_root_store(path: Path | None) -> None:
    global _root_store
    _root_store = path


def open_store(path: Path | None, remote: str | None = None, read_only: bool = False):
    """The store, with its remote tier if one is configured (flag, $LLMC_REMOTE, config.toml)."""
    from store import Store
    from store.config import remote_settings

    from ..errors import UserError

    store = Store(path if path is not None else _root_store)
    try:
        url, read_only = remote_settings(store.root, remote, read_only)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if url:
        from store.remote import RemoteUnavailable, open_remote

        from .. import progress

        try:
            store.remote = open_remote(url, read_only)
        except RemoteUnavailable as exc:
            raise UserError(str(exc)) from None
        store.remote.progress = progress.task
    return store
