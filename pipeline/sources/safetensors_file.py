"""safetensors files, read through a memory map (bf16 widened to float32 on access)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from llmc.errors import UserError

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
          "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
          "U32": np.uint32, "BOOL": np.bool_}
DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
               "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "U32": "uint32", "BOOL": "bool"}


def read_header(path: Path) -> tuple[dict, int]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UserError(f"{path} is not a safetensors file (truncated header)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 << 20:
            raise UserError(f"{path} is truncated or corrupt (header length {n}, file {size} bytes)")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise UserError(f"{path} is corrupt (unreadable safetensors header)") from None
    header.pop("__metadata__", None)
    data_len = size - 8 - n
    for name, info in header.items():
        start, end = info["data_offsets"]
        if info["dtype"] not in DTYPES:
            raise UserError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        expected = int(np.prod(info["shape"], dtype=np.int64)) * np.dtype(DTYPES[info["dtype"]]).itemsize
        if end > data_len or end - start != expected:
            raise UserError(f"{path} is truncated or corrupt (tensor {name} runs past the end)")
    return header, 8 + n


class SafetensorsReader:
    def __init__(self, root: Path, files: list[str]):
        self.tensors: dict[str, tuple[Path, dict, int]] = {}
        for rel in files:
            path = root / rel
            header, base = read_header(path)
            for name, info in header.items():
                self.tensors[name] = (path, info, base)
        self._maps: dict[Path, np.memmap] = {}

    def shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {n: (tuple(info["shape"]), DTYPE_NAMES[info["dtype"]]) for n, (_, info, _) in self.tensors.items()}

    def raw(self, name: str) -> np.ndarray:
        path, info, base = self.tensors[name]
        if path not in self._maps:
            self._maps[path] = np.memmap(path, dtype=np.uint8, mode="r")
        start, end = info["data_offsets"]
        buf = self._maps[path][base + start: base + end]
        return buf.view(DTYPES[info["dtype"]]).reshape(info["shape"])

    def release(self, name: str) -> None:
        from llmc.sources import release_pages

        if name not in self.tensors:  # a name the scheme reads under others (AWQ's qweight, scales, ...)
            return
        path, info, base = self.tensors[name]
        start, end = info["data_offsets"]
        release_pages(self._maps.get(path), base + start, base + end)

    def get(self, name: str) -> np.ndarray:
        arr = self.raw(name)
        if self.tensors[name][1]["dtype"] == "BF16":
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr
