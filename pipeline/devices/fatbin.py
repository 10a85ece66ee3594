"""Put compiled CUDA kernels (a fatbin) into a library, so loading it needs no compiler.

This TVM stores CUDA modules as C source and compiles them when the library is
loaded (through `tvm_callback_cuda_compile`, i.e. NVRTC or nvcc on the GPU
machine). We compile that source with nvcc at build time instead, for every
requested architecture, and rewrite the module inside the packed library blob
(`__tvm_ffi__library_bin` in devc.ll) from format "cuda" to format "fatbin".

The blob: u64 size, then the import tree (u64 n, n x u64 row pointers, u64 m,
m x u64 children), then per module u64-length-prefixed kind and (except for
"_lib") u64-length-prefixed bytes. A CUDA module's bytes are its format string,
its function table, and its data (last), each in the same length-prefixed form.
"""
from __future__ import annotations

import re
import struct
import subprocess
import tempfile
from pathlib import Path

LIBRARY_BIN = re.compile(r'(@\w*__tvm_ffi__library_bin = constant )\[(\d+) x i8\] c"((?:[^"\\]|\\\\|\\[0-9A-Fa-f]{2})*)"')


def _u64(data: bytes, at: int) -> int:
    return struct.unpack_from("<Q", data, at)[0]


def _field(value: bytes) -> bytes:
    return struct.pack("<Q", len(value)) + value


def decode_ll_string(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("\\\\", i):  # LLVM writes a backslash as two
            out.append(0x5C)
            i += 2
        elif text[i] == "\\":
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(text[i]))
            i += 1
    return bytes(out)


def encode_ll_string(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:02X}" for b in data)


def nvcc_fatbin(source: str, archs: tuple[str, ...]) -> bytes:
    """nvcc in a fixed-name folder with relative paths, so the fatbin does not depend on where it ran."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernels.cu").write_text(source)
        cmd = ["nvcc", "--fatbin", "-O3", "-o", "kernels.fatbin", "kernels.cu"]
        for arch in archs:
            cmd += ["-gencode", f"arch=compute_{arch[3:]},code=sm_{arch[3:]}"]
        newest = max(archs, key=lambda a: int(a[3:]))[3:]
        cmd += ["-gencode", f"arch=compute_{newest},code=compute_{newest}"]  # PTX for newer GPUs
        try:
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        except FileNotFoundError:
            raise RuntimeError("CUDA libraries are compiled with nvcc, which is not on PATH") from None
        if r.returncode != 0:
            raise RuntimeError(f"nvcc failed: {r.stderr.strip()[-2000:]}")
        return (Path(tmp) / "kernels.fatbin").read_bytes()


def _as_fatbin(module: bytes, archs: tuple[str, ...]) -> bytes:
    fmt_len = _u64(module, 0)
    fmt = module[8:8 + fmt_len]
    if fmt != b"cuda":
        return module  # already binary
    start = 8 + fmt_len
    for at in range(start, len(module) - 8):
        if _u64(module, at) == len(module) - at - 8:  # the data field runs to the end
            break
    else:
        raise ValueError("CUDA module without a source field")
    source = module[at + 8:].decode()
    return _field(b"fatbin") + module[start:at] + _field(nvcc_fatbin(source, archs))


def patch_blob(blob: bytes, archs: tuple[str, ...]) -> bytes:
    at = 8
    rows = _u64(blob, at)
    at += 8 + 8 * rows
    children = _u64(blob, at)
    at += 8 + 8 * children
    tree, modules = blob[8:at], []
    while at < len(blob):
        kind_len = _u64(blob, at)
        kind = blob[at + 8: at + 8 + kind_len]
        at += 8 + kind_len
        data = None
        if kind != b"_lib":
            size = _u64(blob, at)
            data = blob[at + 8: at + 8 + size]
            at += 8 + size
            if kind == b"cuda":
                data = _as_fatbin(data, archs)
        modules.append(_field(kind) + (_field(data) if data is not None else b""))
    body = tree + b"".join(modules)
    return struct.pack("<Q", len(body)) + body


def embed_fatbins(devc_ll: str, archs: tuple[str, ...]) -> str:
    """devc.ll with every CUDA module of its library blob compiled to a fatbin."""
    match = LIBRARY_BIN.search(devc_ll)
    if match is None:
        raise ValueError("no __tvm_ffi__library_bin in the packed imports")
    old_len = match.group(2)
    blob = patch_blob(decode_ll_string(match.group(3)), archs)
    constant = f'{match.group(1)}[{len(blob)} x i8] c"{encode_ll_string(blob)}"'
    text = devc_ll[:match.start()] + constant + devc_ll[match.end():]
    return text.replace(f"[{old_len} x i8]", f"[{len(blob)} x i8]")
