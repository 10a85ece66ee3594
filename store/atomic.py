"""Atomic file creation: a temp file on the same filesystem, fsync, rename."""
from __future__ import annotations

import ctypes
import functools
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


@functools.cache
def _sync_file_range():
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return call


def start_writeback(fd: int) -> None:
    """Start writing a file's dirty pages to disk now, without waiting (Linux's sync_file_range): a stage
    that writes gigabytes for the store then finds them on disk when publish fsyncs them, instead of
    waiting there for all of it. Elsewhere, nothing."""
    call = _sync_file_range()
    if call is not None:
        call(fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE


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
