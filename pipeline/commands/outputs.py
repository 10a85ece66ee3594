"""Put an artifact into a user's output folder: whole or not at all, index files last.

A new folder appears by one rename. An existing folder (the seed guide puts
convert_weight's and gen_config's files together) gets only this command's
files replaced, each by a rename, with the index written last so a reader never
sees an index that names shards not yet in place.
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import uuid
from pathlib import Path

from llmc.errors import UserError


def check_writable(out: Path, want_dir: bool = True) -> None:
    """Fail early, before any work, if out cannot be created or written."""
    out = Path(out)
    if out.exists():
        if want_dir and not out.is_dir():
            raise UserError(f"output {out} exists and is not a folder")
        if not want_dir and out.is_dir():
            raise UserError(f"output {out} is a folder, not a file path")
        probe_dir = out if out.is_dir() else out.parent
    else:
        probe_dir = out.parent
        while not probe_dir.exists():
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise UserError(f"cannot create output {out}: {probe_dir} is not a folder")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UserError(f"output {out} is not writable")


def _staging(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent / f".{out.name}.llmc-{uuid.uuid4().hex[:8]}"


def install_dir(store, manifest: str, out: Path, last: tuple[str, ...] = (), owned: tuple[str, ...] = (),
                exclude: tuple[str, ...] = ()) -> None:
    """Materialize manifest into folder out. owned: globs of this command's files (stale ones are removed);
    exclude: artifact files that are not for the user's folder."""
    out = Path(out)
    try:
        staging = _staging(out)
        store.materialize(manifest, staging)
        for name in exclude:
            (staging / name).unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write output {out}: {exc.strerror or exc}") from None
    try:
        if not out.exists():
            os.rename(staging, out)
            return
        if not out.is_dir():
            raise UserError(f"output {out} exists and is not a folder")
        new = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        for rel in sorted(new, key=lambda r: (r in last, r)):
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, dest)
        for old in out.iterdir():
            if old.is_file() and old.name not in new and any(fnmatch.fnmatch(old.name, g) for g in owned):
                old.unlink()
    except OSError as exc:
        raise UserError(f"cannot write output {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_file(store, manifest: str, member: str, out: Path) -> None:
    """Put one file of an artifact at out (a library), by rename from a sibling temp file."""
    out = Path(out)
    try:
        staging = _staging(out)
        store.materialize(manifest, staging)
        os.replace(staging / member, out)
    except OSError as exc:
        raise UserError(f"cannot write output {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
