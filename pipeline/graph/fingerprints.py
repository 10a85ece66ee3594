"""Versions of the tools a stage's output depends on, read without importing them.

`import tvm` alone takes about 2 s; a cache hit must not pay it, so TVM's
version and commit come from its package metadata and `_version.py` text.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import platform
import re
import shutil
import subprocess
from pathlib import Path


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@functools.cache
def tvm_location() -> Path | None:
    spec = importlib.util.find_spec("tvm")
    return Path(spec.origin).parent if spec and spec.origin else None


@functools.cache
def tvm_commit() -> str:
    loc = tvm_location()
    if loc is None:
        return "absent"
    try:
        text = (loc / "_version.py").read_text()
    except OSError:
        return "unknown"
    m = re.search(r"__commit_id__\s*=\s*commit_id\s*=\s*'([^']*)'", text)
    return m.group(1) if m else "unknown"


def tvm() -> str:
    return f"{_dist_version('apache-tvm')}+{tvm_commit()}"


def which(name: str) -> str | None:
    """name on PATH, or a versioned Debian binary such as ld64.lld-14."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/bin", "/usr/local/bin"):
        versioned = sorted(Path(folder).glob(f"{name}-[0-9]*"))
        if versioned:
            return str(versioned[-1])
    return None


def _version_output(*names: str) -> str | None:
    """stdout of `NAME --version` for the first of names on PATH; None if none is installed."""
    exe = next((found for name in names if (found := shutil.which(name))), None)
    if exe is None:
        return None
    try:
        return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _first_line(*names: str) -> str:
    """First line of the first installed name's --version: "absent" if none is, "unknown" if it says nothing."""
    out = _version_output(*names)
    if out is None:
        return "absent"
    return out.splitlines()[0].strip() if out else "unknown"


@functools.cache
def cc() -> str:
    """First line of the system C compiler's --version (the linker driver for .so files)."""
    return _first_line("cc", "gcc", "clang")


@functools.cache
def nvcc() -> str:
    out = _version_output("nvcc")
    if out is None:
        return "absent"
    lines = [ln for ln in out.splitlines() if ln.startswith("Build ") or "release" in ln]
    return " ".join(lines).strip() or "unknown"


@functools.cache
def lld() -> str:
    exe = which("ld.lld") or which("ld64.lld")
    return _first_line(exe) if exe else "absent"


@functools.cache
def emcc() -> str:
    return _first_line("emcc")


@functools.cache
def compiler_source() -> str:
    """The llmc code that produces a library: the compiler package, every family's TVM module, the lower
    stage, and what they import from llmc (read as text, no TVM import)."""
    from llmc import families
    from llmc.graph import code_digest

    modules = (code_digest.package_modules("llmc.compiler") + tuple(f"{f.__name__}.nn" for f in families.FAMILIES)
               + ("llmc.stages.lower",))
    return code_digest.digest(modules)


TOOLS = {
    "python": lambda: f"{platform.python_implementation()} {platform.python_version()}",
    "numpy": lambda: _dist_version("numpy"),
    "llmc": lambda: _dist_version("llmc"),
    "tvm": tvm,
    "cc": cc,
    "nvcc": nvcc,
    "lld": lld,
    "emcc": emcc,
    "safetensors": lambda: _dist_version("safetensors"),
    "gguf": lambda: _dist_version("gguf"),
    "tokenizers": lambda: _dist_version("tokenizers"),
    "torch": lambda: _dist_version("torch"),
    "transformers": lambda: _dist_version("transformers"),
    "llmc-compiler": compiler_source,
}


def fingerprint(names) -> dict[str, str]:
    return {name: TOOLS[name]() for name in sorted(set(names))}
