"""Rehash everything in the store; corrupt objects are named and moved aside."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmc.store import digest
from llmc.store.local import MissingObject, Store, StoreError


@dataclass(frozen=True)
class Problem:
    kind: str
    digest: str
    path: Path
    why: str

    def __str__(self) -> str:
        return f"{self.kind} {self.digest} at {self.path}: {self.why}"


@dataclass
class Report:
    blobs: int = 0
    manifests: int = 0
    problems: list[Problem] = field(default_factory=list)
    stale_actions: list[str] = field(default_factory=list)
    tainted_actions: list[str] = field(default_factory=list)  # built from a corrupt input: dropped

    @property
    def ok(self) -> bool:
        return not self.problems


def _rehash(path: Path) -> str | None:
    try:
        return digest.of_file(path)
    except OSError:
        return None


def verify(store: Store, on_object=None) -> Report:
    report = Report()
    for d, path in store.iter_blobs():
        report.blobs += 1
        if _rehash(path) != d:
            moved = store.quarantine_blob(d)
            report.problems.append(Problem("corrupt blob", d, path, f"contents do not match; moved to {moved}"))
        if on_object:
            on_object()
    broken: set[str] = set()  # manifests that cannot be read or miss a blob
    for d, path in store.iter_manifests():
        report.manifests += 1
        try:
            m = store.get_manifest(d)
        except StoreError as exc:
            report.problems.append(Problem("corrupt manifest", d, path, str(exc)))
            broken.add(d)
            continue
        for e in m:
            if not store.has_blob(e.digest):
                report.problems.append(
                    Problem("incomplete manifest", d, path, f"blob {e.digest} of {e.path} is missing"))
                broken.add(d)
        if on_object:
            on_object()
    for name in store.bad_refs():
        path = store.refs / name
        moved = store.quarantine_ref(name)
        report.problems.append(Problem("corrupt ref", name, path, f"holds no digest; moved to {moved}"))
    for entry in store.iter_actions():
        try:
            store.get_manifest(entry.manifest)
        except (MissingObject, StoreError):
            report.stale_actions.append(entry.key)
    report.tainted_actions = _drop_tainted(store, broken)
    return report


def _drop_tainted(store: Store, broken: set[str]) -> list[str]:
    """Drop every action entry built, directly or through other entries, from a broken artifact: what it
    made may carry the corruption, so it is rebuilt rather than served."""
    entries = list(store.iter_actions())
    tainted, dropped = set(broken), []
    changed = True
    while changed:
        changed = False
        for entry in entries:
            inputs = entry.provenance.get("input_manifests", [])
            if entry.key not in dropped and entry.manifest not in broken and tainted.intersection(inputs):
                store.drop_action(entry.key)
                dropped.append(entry.key)
                tainted.add(entry.manifest)
                changed = True
    return dropped
