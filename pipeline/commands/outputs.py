"""Put an artifact into a user's output folder: whole or not at all.

A new folder appears by one rename. An existing folder (the seed guide puts convert_weight's and
gen_config's files together, and users keep their libraries there) is rebuilt beside it: its other
files hard-linked in, this command's files and the stale ones it owns left out, then the two folders
are exchanged in one renameat2(RENAME_EXCHANGE). A reader sees the old folder or the new one, never a
mix. Staging folders are named `.NAME.llmc-PID-ID`; any an earlier, killed command left behind is
removed by the next install into the same parent folder.

Files of LINK_MIN_BYTES or more (the weight shards) are hard links to the store's blobs, as the Hugging
Face cache's snapshots point at its blobs: a 7B model's 4 GB is not written a second time, and a cached
conversion installs at once. They are read-only, as the blobs are; the store hashes a blob before it
serves it again, so one changed through such a link is caught, never passed on. Smaller files (indexes,
configs a user may edit in place) are copies.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import fnmatch
import os
import shutil
import uuid
from pathlib import Path

from llmc.errors import UserError

LINK_MIN_BYTES = 1 << 20


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
    _remove_dead_staging(out.parent)
    return out.parent / f".{out.name}.llmc-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _remove_dead_staging(folder: Path) -> None:
    """Staging (and swapped-out) folders of processes that are gone: a kill or a full disk left them."""
    for path in folder.glob(".*.llmc-*-*"):
        pid = path.name.rsplit(".llmc-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: no exchange on this file system
        return False
    raise OSError(err, os.strerror(err), str(a))


def _link_tree(src: Path, dest: Path, skip) -> None:
    """dest gets src's files by hard link (a copy across file systems), except those skip(rel) names."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if skip(rel.as_posix()) or (dest / rel).exists():
            continue
        if path.is_dir() and not path.is_symlink():
            (dest / rel).mkdir(parents=True, exist_ok=True)
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            os.symlink(os.readlink(path), dest / rel)
            continue
        try:
            os.link(path, dest / rel)
        except OSError:
            shutil.copy2(path, dest / rel)


def artifact_text(store, manifest: str, name: str) -> str | None:
    """One file of a stored artifact, as text (None when the artifact has no such file)."""
    for entry in store.get_manifest(manifest):
        if entry.path == name:
            return store.read_blob(entry.digest).decode()
    return None


def install_dir(store, manifest: str, out: Path, last: tuple[str, ...] = (), owned: tuple[str, ...] = (),
                exclude: tuple[str, ...] = ()) -> None:
    """Materialize manifest into folder out. owned: globs of this command's files (stale ones are removed);
    exclude: artifact files that are not for the user's folder. last: kept for callers that name their
    index files; with the folder exchanged whole, order no longer matters."""
    def fill(staging: Path) -> None:
        store.materialize(manifest, staging, link_min_bytes=LINK_MIN_BYTES)
        for name in exclude:
            (staging / name).unlink(missing_ok=True)
        if out.is_dir():
            new = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}
            stale = lambda rel: "/" not in rel and any(fnmatch.fnmatch(rel, g) for g in owned)  # noqa: E731
            _link_tree(out, staging, lambda rel: rel in new or stale(rel))

    _swap_in(Path(out), fill)


def replace_dir(tree: Path, out: Path) -> None:
    """Make a finished folder the output out, whole: nothing of an old out is kept."""
    _swap_in(Path(out), lambda staging: os.rename(tree, staging))


def _swap_in(out: Path, fill) -> None:
    """fill(staging) builds the new folder beside out; it then replaces out in one rename (or
    renameat2 exchange, the old folder then removed)."""
    staging = _staging(out)
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"output {out} exists and is not a folder")
        fill(staging)
        if not out.exists():
            os.rename(staging, out)
            return
        if not _exchange(staging, out):
            old = out.parent / f".{out.name}.llmc-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
            os.rename(staging, out)
            staging = old
    except OSError as exc:
        raise UserError(f"cannot write output {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_file(store, manifest: str, member: str, out: Path) -> None:
    """Put one file of an artifact at out (a library), by rename from a sibling temp file."""
    out = Path(out)
    staging = _staging(out)
    try:
        store.materialize(manifest, staging)
        os.replace(staging / member, out)
    except OSError as exc:
        raise UserError(f"cannot write output {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
