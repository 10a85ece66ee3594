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

_root_store: Path | None = None


def set_root_store(path: Path | None) -> None:
    global _root_store
    _root_store = path


def open_store(path: Path | None):
    from store import Store

    return Store(path if path is not None else _root_store)
