"""A GGUF file's header: its metadata as Python values and its tensors as views of the mapped file.

The `gguf` package's reader makes a memmap view for every part of every field, so a vocabulary of 49,152
tokens takes it 1.7 s and a 128k one several; here arrays of numbers are one np.frombuffer and strings a
struct walk (tens of milliseconds). The `gguf` package still names the tensor types and dequantizes.
Layout (GGUF v2/v3, little-endian): magic, version u32, tensor count u64, field count u64; fields
(key string, type u32, value); tensor infos (name, n_dims u32, dims u64..., type u32, offset u64);
tensor data from the next multiple of general.alignment (32 by default).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STRING, ARRAY = 8, 9
SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8",
           12: "<f8"}
ITEM_TYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16,
              "I32": np.int32, "I64": np.int64}


class GGUFFormatError(ValueError):
    pass


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]   # GGUF's order: the fastest-varying dimension first
    tensor_type: object      # gguf.GGMLQuantizationType
    data_offset: int         # from the start of the file
    n_bytes: int
    data: np.ndarray         # a view of the mapping: items for float and integer types, else bytes per row


class GGUFHeader:
    def __init__(self, path: str | Path):
        self.data = np.memmap(path, dtype=np.uint8, mode="r")
        if bytes(self.data[:4]) != b"GGUF":
            raise GGUFFormatError("not a GGUF file (no GGUF magic)")
        self._pos = 4
        version, tensor_count, field_count = self._unpack("<IQQ")
        if version not in (2, 3):
            raise GGUFFormatError(f"GGUF version {version} (this reads 2 and 3, little-endian)")
        self.fields = {}
        for _ in range(field_count):
            key = self._string()
            self.fields[key] = self._value(self._unpack("<I")[0])
        infos = [self._tensor_info() for _ in range(tensor_count)]
        alignment = int(self.fields.get("general.alignment", 32))
        if alignment <= 0 or alignment & (alignment - 1):
            raise GGUFFormatError(f"general.alignment {alignment} is not a power of two")
        start = -(-self._pos // alignment) * alignment
        self.tensors = [self._tensor(start, *info) for info in infos]

    def _unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self._pos + size > len(self.data):
            raise GGUFFormatError("the header runs past the end of the file")
        values = struct.unpack_from(fmt, self.data, self._pos)
        self._pos += size
        return values

    def _string(self) -> str:
        (length,) = self._unpack("<Q")
        end = self._pos + length
        if end > len(self.data):
            raise GGUFFormatError("a string runs past the end of the file")
        text = bytes(self.data[self._pos:end]).decode("utf-8", errors="replace")
        self._pos = end
        return text

    def _value(self, kind: int):
        if kind == STRING:
            return self._string()
        if kind == ARRAY:
            item_kind, count = self._unpack("<IQ")
            if item_kind in SCALARS:
                return self._numbers(item_kind, count).tolist()
            return [self._value(item_kind) for _ in range(count)]
        return self._numbers(kind, 1)[0].item()

    def _numbers(self, kind: int, count: int) -> np.ndarray:
        if kind not in SCALARS:
            raise GGUFFormatError(f"unknown GGUF value type {kind}")
        dtype = np.dtype(SCALARS[kind])
        end = self._pos + count * dtype.itemsize
        if end > len(self.data):
            raise GGUFFormatError("a value runs past the end of the file")
        items = np.frombuffer(self.data, dtype, count, self._pos)
        self._pos = end
        return items

    def _tensor_info(self) -> tuple:
        name = self._string()
        (n_dims,) = self._unpack("<I")
        dims = self._unpack(f"<{n_dims}Q")
        kind, offset = self._unpack("<IQ")
        return name, dims, kind, offset

    def _tensor(self, start: int, name: str, dims: tuple[int, ...], kind: int, offset: int) -> TensorInfo:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        try:
            tensor_type = GGMLQuantizationType(kind)
        except ValueError:
            raise GGUFFormatError(f"tensor {name}: unknown type {kind}") from None
        block, type_size = GGML_QUANT_SIZES[tensor_type]
        n_elements = int(np.prod(dims, dtype=np.int64))
        n_bytes = n_elements * type_size // block
        begin = start + offset
        if begin + n_bytes > len(self.data):
            raise GGUFFormatError(f"tensor {name} runs past the end of the file")
        raw = self.data[begin:begin + n_bytes]
        item = ITEM_TYPES.get(tensor_type.name)
        if item is not None:
            view = raw.view(item).reshape(tuple(reversed(dims)) or (1,))
        else:  # rows of blocks, as the gguf package's dequantize takes them
            view = raw.reshape(*reversed(dims[1:]), dims[0] // block * type_size)
        return TensorInfo(name, tuple(dims), tensor_type, begin, n_bytes, view)
