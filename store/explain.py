"""Why two action keys differ, from the key preimages kept in provenance."""
from __future__ import annotations

from typing import Any

from llmc.store.local import _KEY_RE, ActionEntry, Store, StoreError


def resolve(store: Store, name: str) -> ActionEntry:
    """An action key, or a ref (the newest action that produced the ref's manifest)."""
    if _KEY_RE.match(name):
        entry = store.get_action(name)
        if entry is None:
            raise StoreError(f"no action entry {name}")
        return entry
    manifest = store.get_ref(name)
    if manifest is None:
        raise StoreError(f"{name!r} is neither an action key nor a ref")
    producers = [e for e in store.iter_actions() if e.manifest == manifest]
    if not producers:
        raise StoreError(f"no action entry produced ref {name} ({manifest})")
    return max(producers, key=lambda e: str(e.provenance.get("time", "")))


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            sub = f"{path}.{k}" if path else k
            if k not in a:
                out.append(f"{sub}: only in B ({b[k]!r})")
            elif k not in b:
                out.append(f"{sub}: only in A ({a[k]!r})")
            else:
                out.extend(diff(a[k], b[k], sub))
        return out
    if a != b:
        return [f"{path}: {a!r} -> {b!r}"]
    return []


def explain(store: Store, name_a: str, name_b: str, depth: int = 3) -> list[str]:
    a, b = resolve(store, name_a), resolve(store, name_b)
    return _explain_entries(store, a, b, depth)


def _explain_entries(store: Store, a: ActionEntry, b: ActionEntry, depth: int) -> list[str]:
    pa, pb = a.provenance.get("preimage"), b.provenance.get("preimage")
    if pa is None or pb is None:
        raise StoreError("an entry has no key preimage in its provenance")
    if a.key == b.key:
        return [f"same key {a.key}"]
    lines = diff(pa, pb)
    if depth > 1:
        lines += _explain_inputs(store, pa.get("inputs", {}), pb.get("inputs", {}), depth - 1)
    return lines


def _explain_inputs(store: Store, ia: dict, ib: dict, depth: int) -> list[str]:
    """Follow an input that differs back to the actions that built each side."""
    lines = []
    by_manifest = {}
    for entry in store.iter_actions():
        by_manifest.setdefault(entry.manifest, entry)
    for name in sorted(set(ia) & set(ib)):
        if ia[name] == ib[name]:
            continue
        ea, eb = by_manifest.get(ia[name]), by_manifest.get(ib[name])
        if ea and eb:
            inner = _explain_entries(store, ea, eb, depth)
            lines += [f"  inputs.{name} <- {line}" for line in inner]
    return lines
