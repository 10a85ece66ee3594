"""Digests of files outside the store, remembered by (path, size, mtime, inode).

A cached command must not rehash a multi-gigabyte source model to find its key.
Like git's index, an entry is trusted only while the file's stat is unchanged,
and a file modified within the last few seconds is not remembered at all
(a later write in the same timestamp tick would go unnoticed).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import msgpack

from llmc.store import atomic

RACY_S = 3.0


class HashCache:
    def __init__(self, path: Path, tmp_dir: Path):
        self.path, self.tmp_dir = path, tmp_dir
        self._entries: dict[str, list] | None = None
        self._dirty = False

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            try:
                self._entries = msgpack.unpackb(self.path.read_bytes(), raw=False)
                if not isinstance(self._entries, dict):
                    self._entries = {}
            except (OSError, ValueError, msgpack.UnpackException):
                self._entries = {}
        return self._entries

    @staticmethod
    def stamp(file: Path) -> tuple[Path, list]:
        """(absolute path, [size, mtime_ns, inode, device]): taken before the file is hashed."""
        file = Path(os.path.abspath(file))
        st = file.stat()
        return file, [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]

    def known(self, file: Path, stamp: list) -> str | None:
        cached = self._load().get(str(file))
        return cached[4] if cached and cached[:4] == stamp else None

    def remember(self, file: Path, stamp: list, d: str) -> None:
        """Record a digest hashed after stamp was taken (not at all if the file was modified just then)."""
        if time.time() - stamp[1] / 1e9 > RACY_S:
            self._load()[str(file)] = stamp + [d]
            self._dirty = True

    def save(self) -> None:
        if self._dirty and self._entries is not None:
            try:
                atomic.write_bytes(self.path, msgpack.packb(self._entries), self.tmp_dir)
            except OSError:
                pass  # a cache of a cache: losing it costs only time
            self._dirty = False
