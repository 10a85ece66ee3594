"""The library blob: the device modules TVM packs into a library (`__tvm_ffi__library_bin` in devc.ll).

The blob: u64 size, then the import tree (u64 n, n x u64 row pointers, u64 m,
m x u64 children), then per module u64-length-prefixed kind and (except for
"_lib") u64-length-prefixed bytes. A device module's bytes are its format string,
its function table, and its data (last: kernel source or binary), each in the
same length-prefixed form.
"""
from __future__ import annotations

import re
import struct

LIBRARY_BIN = re.compile(r'(@\w*__tvm_ffi__library_bin = constant )\[(\d+) x i8\] c"((?:[^"\\]|\\\\|\\[0-9A-Fa-f]{2})*)"')


def _u64(data: bytes, at: int) -> int:
    return struct.unpack_from("<Q", data, at)[0]


def field(value: bytes) -> bytes:
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


def read(devc_ll: str) -> bytes:
    match = LIBRARY_BIN.search(devc_ll)
    if match is None:
        raise ValueError("no __tvm_ffi__library_bin in the packed imports")
    return decode_ll_string(match.group(3))


def replace(devc_ll: str, blob: bytes) -> str:
    """devc.ll with its blob replaced (and every use of the blob's array type resized)."""
    match = LIBRARY_BIN.search(devc_ll)
    old_len = match.group(2)
    constant = f'{match.group(1)}[{len(blob)} x i8] c"{encode_ll_string(blob)}"'
    text = devc_ll[:match.start()] + constant + devc_ll[match.end():]
    return text.replace(f"[{old_len} x i8]", f"[{len(blob)} x i8]")


def split(blob: bytes) -> tuple[bytes, list[tuple[bytes, bytes | None]]]:
    """(import tree, [(kind, module bytes or None for "_lib")])."""
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
        modules.append((kind, data))
    return tree, modules


def join(tree: bytes, modules: list[tuple[bytes, bytes | None]]) -> bytes:
    body = tree + b"".join(field(kind) + (field(data) if data is not None else b"") for kind, data in modules)
    return struct.pack("<Q", len(body)) + body


def string(data: bytes, at: int) -> tuple[bytes, int]:
    """A u64-length-prefixed field at `at`: (its bytes, the offset after it)."""
    size = _u64(data, at)
    return data[at + 8:at + 8 + size], at + 8 + size


def function_table(data: bytes, at: int) -> tuple[list[str], int]:
    """A device module's function table at `at`: (kernel names, the offset after it). The table is a
    count, then per kernel its name and a FunctionInfo (name, argument types of 4 bytes, launch
    parameter tags, extra tags of 4 bytes)."""
    names, count, at = [], _u64(data, at), at + 8
    for _ in range(count):
        _, at = string(data, at)
        name, at = string(data, at)
        names.append(name.decode())
        at += 8 + 4 * _u64(data, at)
        tags, at = _u64(data, at), at + 8
        for _ in range(tags):
            _, at = string(data, at)
        at += 8 + 4 * _u64(data, at)
    return names, at


def module_parts(module: bytes) -> tuple[bytes, bytes, bytes]:
    """A cuda or opencl module's (format, function table bytes, data)."""
    fmt, start = string(module, 0)
    _, end = function_table(module, start)
    data, _ = string(module, end)
    return fmt, module[start:end], data


# Module kinds holding kernels (the others: the VM executable, "_lib" for the host code).
DEVICE_KINDS = (b"cuda", b"opencl", b"metal", b"webgpu")
