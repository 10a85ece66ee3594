"""Garbage collection: mark from refs and pins, sweep what is unreachable and old.

Reachability follows provenance: an action entry whose output is kept keeps the
input manifests it was built from, so a ref to a compiled library also keeps
the lowered module and objects that make the next identical compile a hit.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from llmc.store import digest
from llmc.store.local import Store, StoreError, process_alive

DEFAULT_GRACE_S = 24 * 3600


@dataclass
class GcPlan:
    kept_manifests: set[str] = field(default_factory=set)
    kept_blobs: set[str] = field(default_factory=set)
    actions: list[str] = field(default_factory=list)         # keys to drop
    manifests: list[tuple[str, Path]] = field(default_factory=list)
    blobs: list[tuple[str, Path]] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)          # tmp/ and quarantine/ leftovers

    @property
    def bytes_freed(self) -> int:
        return sum(digest.size_of(d) for d, _ in self.blobs + self.manifests)


def _older_than(path: Path, seconds: float, now: float) -> bool:
    try:
        return now - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def mark(store: Store) -> tuple[set[str], set[str]]:
    """(manifest digests, blob digests) reachable from refs and pins."""
    manifests = set(store.list_refs().values()) | store.pinned_digests()
    entries = list(store.iter_actions())
    changed = True
    while changed:
        changed = False
        for entry in entries:
            if entry.manifest in manifests:
                for d in entry.provenance.get("input_manifests", []):
                    if d not in manifests:
                        manifests.add(d)
                        changed = True
    blobs: set[str] = set()
    for m in manifests:
        try:
            blobs.update(e.digest for e in store.get_manifest(m))
        except StoreError:
            continue
    return manifests, blobs


def plan(store: Store, grace_s: float = DEFAULT_GRACE_S, now: float | None = None) -> GcPlan:
    now = time.time() if now is None else now
    p = GcPlan()
    p.kept_manifests, p.kept_blobs = mark(store)
    for d, path in store.iter_manifests():
        if d not in p.kept_manifests and _older_than(path, grace_s, now):
            p.manifests.append((d, path))
    for d, path in store.iter_blobs():
        if d not in p.kept_blobs and _older_than(path, grace_s, now):
            p.blobs.append((d, path))
    gone = {d for d, _ in p.manifests}
    for entry in store.iter_actions():
        if entry.manifest in gone or not store.manifest_path(entry.manifest).exists():
            p.actions.append(entry.key)
    for folder in (store.tmp, store.quarantine):
        if folder.exists():
            for path in folder.iterdir():
                if _older_than(path, grace_s, now) and not _held_by_live_process(path):
                    p.scratch.append(path)
    return p


def _held_by_live_process(path: Path) -> bool:
    pid = path.name.split("-", 1)[0]
    return pid.isdigit() and process_alive(int(pid))


def execute(store: Store, p: GcPlan) -> None:
    # Entries go before the objects they name, so no entry ever points at a swept manifest.
    for key in p.actions:
        store.drop_action(key)
    for _, path in p.manifests + p.blobs:
        path.unlink(missing_ok=True)
    for path in p.scratch:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def parse_duration(text: str) -> float:
    """'24h', '30m', '2d', '90s' or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 30m, 24h, 7d") from None
    if value < 0:
        raise ValueError(f"bad duration {text!r}: must not be negative")
    return value
