"""A digest of the llmc source that produces an artifact: some modules and every llmc module they import.

Keyed into lower, it makes any change to the compiler (or to what it imports from llmc) a new key by
construction, so a development tree never serves a library built by older code. Read as text and
parsed, never imported: a cache hit must not import TVM.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import xxhash

PACKAGE = "llmc"


def _roots() -> dict[str, Path]:
    """Where each mapped package's files are (installed: nested under llmc/; in a checkout: side by side)."""
    import importlib.util

    return {name: Path(importlib.util.find_spec(name).submodule_search_locations[0])
            for name in ("llmc", "llmc.store", "llmc.runtime")}


def module_file(name: str, roots: dict[str, Path]) -> Path | None:
    prefix = max((r for r in roots if name == r or name.startswith(r + ".")), key=len, default=None)
    if prefix is None:
        return None
    base = roots[prefix].joinpath(*name[len(prefix):].lstrip(".").split(".")) if name != prefix else roots[prefix]
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(llmc module, names taken from it) for each import of a module; () for a plain import."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, ()) for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] == PACKAGE:
                found.append((base, tuple(a.name for a in node.names)))
    return found


def closure(modules: tuple[str, ...]) -> dict[str, Path]:
    """Each named module and every llmc module it imports, transitively, with their parent packages
    (hashed, since importing a module runs them, but not followed: a package's siblings are not code
    that the named modules run). `from pkg import submodule` follows the submodule, not pkg."""
    roots = _roots()
    seen: dict[str, tuple[Path, bool]] = {}
    todo = [(name, True) for name in modules]
    while todo:
        name, follow = todo.pop()
        if name in seen and (not follow or seen[name][1]):
            continue
        path = module_file(name, roots)
        if path is None:
            continue
        seen[name] = (path, follow)
        parents = name.split(".")
        todo += [(".".join(parents[:i]), False) for i in range(1, len(parents))]
        if not follow:
            continue
        for base, names in _imported(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            submodules = [f"{base}.{n}" for n in names if module_file(f"{base}.{n}", roots) is not None]
            todo += [(m, True) for m in submodules]
            todo.append((base, len(submodules) < len(names) or not names))
    return {name: path for name, (path, _) in seen.items()}


def package_modules(package: str) -> tuple[str, ...]:
    """Every module in an llmc package folder (by file, not by import)."""
    folder = module_file(package, _roots()).parent
    return tuple(sorted(f"{package}.{p.stem}" if p.stem != "__init__" else package
                        for p in folder.glob("*.py")))


@functools.cache
def digest(modules: tuple[str, ...]) -> str:
    """xxh3-128 over (module name, source) of closure(modules), in name order."""
    h = xxhash.xxh3_128()
    for name, path in sorted(closure(modules).items()):
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
