"""Atomic file creation: a temp file on the same filesystem, fsync, rename."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from llmc.store import failpoints


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(tmp_dir: Path, suffix: str = ".part") -> Path:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir / f"{uuid.uuid4().hex}{suffix}"


def write_bytes(dest: Path, data: bytes, tmp_dir: Path, mode: int = 0o644) -> None:
    """Replace dest so that readers see the old file or all of data, never a part."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(tmp_dir)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dest.parent)


def publish(tmp: Path, dest: Path, mode: int = 0o444) -> bool:
    """Move a finished temp file to dest unless dest exists; True if this call created dest.

    For content-addressed objects an existing dest holds the same bytes, so losing
    a race to another writer is success, and a published object is never replaced.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    failpoints.hit("store.before_publish")
    os.chmod(tmp, mode)
    try:
        os.link(tmp, dest)
        created = True
    except FileExistsError:
        created = False
    except OSError:
        # Filesystems without hard links: rename, accepting a same-bytes replace.
        if dest.exists():
            created = False
        else:
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
            return True
    tmp.unlink(missing_ok=True)
    if created:
        fsync_dir(dest.parent)
    return created
