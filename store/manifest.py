"""Manifests: the list of files of one artifact, content-addressed.

Only what makes up the artifact is listed (relative path, digest, size,
normalized mode). No time, host or origin: the same bytes give the same
manifest digest on every machine, so downstream cache keys agree.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from llmc.store import canonical, digest

SCHEMA = 1


class BadManifest(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    path: str
    digest: str
    size: int
    mode: int  # 0o644 or 0o755

    @property
    def executable(self) -> bool:
        return self.mode == 0o755


def normalize_mode(st_mode: int) -> int:
    return 0o755 if st_mode & stat.S_IXUSR else 0o644


def check_relpath(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("..", ".", "") for part in p.parts):
        raise BadManifest(f"bad path in artifact: {path!r}")
    return str(p)


@dataclass(frozen=True)
class Manifest:
    entries: tuple[Entry, ...]

    def __post_init__(self):
        paths = [e.path for e in self.entries]
        if paths != sorted(paths) or len(set(paths)) != len(paths):
            raise BadManifest("manifest entries must be unique and sorted by path")

    @classmethod
    def of(cls, entries) -> "Manifest":
        return cls(tuple(sorted(entries, key=lambda e: e.path)))

    def encode(self) -> bytes:
        return canonical.packb(
            {"schema": SCHEMA, "files": [[e.path, e.digest, e.size, e.mode] for e in self.entries]}
        )

    @property
    def digest(self) -> str:
        return digest.of_bytes(self.encode())

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __len__(self):
        return len(self.entries)

    @classmethod
    def decode(cls, data: bytes) -> "Manifest":
        try:
            obj = canonical.unpackb(data)
            if obj.get("schema") != SCHEMA:
                raise BadManifest(f"manifest schema {obj.get('schema')!r} is not {SCHEMA}")
            entries = [Entry(check_relpath(p), d, int(s), int(m)) for p, d, s, m in obj["files"]]
            for e in entries:
                if digest.size_of(e.digest) != e.size:
                    raise BadManifest(f"size of {e.path} disagrees with its digest")
        except (ValueError, KeyError, TypeError) as exc:
            raise BadManifest(f"unreadable manifest: {exc}") from exc
        return cls(tuple(entries))


def walk_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, absolute path) of every regular file under root, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                raise BadManifest(f"artifact holds something that is not a regular file: {full}")
            found.append((full.relative_to(root).as_posix(), full))
    return sorted(found)
