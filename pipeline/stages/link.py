"""link: objects -> a model library.

.so with the C compiler (or ld.lld for another ELF architecture), .dylib with ld64.lld
(`-undefined dynamic_lookup`: no Apple SDK needed), .wasm with emcc and TVM's web runtime
bitcode, and .tar written deterministically (sorted members, zero times and owners).
"""
from __future__ import annotations

import platform
import shutil
import subprocess
import tarfile
from pathlib import Path

from llmc.errors import NotAvailable, UserError
from llmc.graph.fingerprints import which

NAME = "link"
VERSION = "1"
EPHEMERAL = False
DEFAULTS = {"format": "so", "triple": ""}
OUTPUT = "model.{format}"
WASM_FLAGS = ["-O3", "-std=c++17", "--no-entry", "-s", "WASM_BIGINT=1", "-s", "ERROR_ON_UNDEFINED_SYMBOLS=0",
              "-s", "STANDALONE_WASM=1", "-s", "ALLOW_MEMORY_GROWTH=1", "-s", "TOTAL_MEMORY=160MB"]
WASM_RUNTIME_FILES = ("wasm_runtime.bc", "tvmjs_support.bc", "webgpu_runtime.bc")


def TOOLS(options: dict, target: dict | None) -> tuple[str, ...]:  # noqa: N802 - the stage protocol's name
    fmt, triple = options.get("format", "so"), options.get("triple", "")
    if fmt == "tar":
        return ("python",)
    if fmt == "wasm":
        return ("emcc",)
    if fmt == "so" and is_native(triple):
        return ("cc",)
    return ("lld",)


def is_native(triple: str) -> bool:
    return not triple or (triple.split("-")[0] == platform.machine() and "linux" in triple)


def macho(triple: str) -> bool:
    return "apple" in triple or "darwin" in triple


def objects(folder: Path) -> list[Path]:
    # lib*.o first, then the packed imports (devc.o), as TVM's export_library orders them.
    return sorted(folder.glob("*.o"), key=lambda p: (not p.name.startswith("lib"), p.name))


def linker_for(fmt: str, triple: str) -> list[str]:
    """The command that links this output here, or NotAvailable naming the missing piece."""
    if fmt in ("so", "dylib") and macho(triple):
        exe = which("ld64.lld")
        if exe is None:
            raise NotAvailable(f"linking a Mach-O library for {triple} needs ld64.lld (Debian: apt install lld) "
                               "or a Mac: use -o NAME.tar for the objects")
        arch = "arm64" if triple.startswith(("arm64", "aarch64")) else "x86_64"
        platform_name = "ios" if "ios" in triple else "macos"
        return [exe, "-dylib", "-arch", arch, "-platform_version", platform_name, "14.0", "14.0",
                "-undefined", "dynamic_lookup"]
    if fmt == "so":
        if is_native(triple):
            cc = shutil.which("cc") or shutil.which("gcc")
            if cc is None:
                raise NotAvailable("linking a .so needs a C compiler (cc), which is not installed")
            return [cc, "-shared", "-fPIC"]
        exe = which("ld.lld")
        if exe is None:
            raise NotAvailable(f"linking a .so for {triple} needs ld.lld (Debian: apt install lld): "
                               "use -o NAME.tar for the objects")
        return [exe, "-shared"]
    if fmt == "wasm":
        if shutil.which("emcc") is None:
            raise NotAvailable("linking a .wasm needs emscripten's emcc on PATH: use -o NAME.tar for the objects")
        return ["emcc", *WASM_FLAGS]
    raise UserError(f"cannot link a .{fmt} library here")


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    fmt, triple = options["format"], options["triple"]
    objs = objects(inputs["objects"])
    out = out_dir / OUTPUT.format(format=fmt)
    if fmt == "tar":
        write_tar(out, objs)
        return
    libs = [inputs["wasm_runtime"] / name for name in WASM_RUNTIME_FILES] if fmt == "wasm" else []
    cmd = linker_for(fmt, triple) + ["-o", str(out), *[str(o) for o in objs + libs]]
    if fmt == "so" and is_native(triple):
        cmd.append("-lm")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"linking failed: {' '.join(r.stderr.split())[:500]}")


def write_tar(out: Path, files: list[Path]) -> None:
    """A tar whose bytes depend only on the files' names and contents (no times, owners or modes)."""
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(files, key=lambda p: p.name):
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
