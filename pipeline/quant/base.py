"""What every scheme kind module shares: the stored tensor record and reading a float parameter."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmc.families.base import Param


@dataclass
class Choice:
    """How a scheme that has a choice picks its codes, and what it measured doing so.

    mode: "search" (least squared error) or "mlc" (MLC's rule, byte-identical to MLC's convert_weight);
    importance: param name -> [K] weights of each input position's error (from calibration);
    errors: param name -> (sum of squared error, sum of squared weight), filled in by convert.
    """
    mode: str = "search"
    importance: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Tensor:
    """One stored tensor: what the weights index and the model library agree on."""
    name: str
    shape: tuple[int, ...]
    dtype: str
    param: str   # the float Param it comes from
    role: str    # "weight", "q_weight", "q_scale", "qweight", "qzeros", "scales"

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def stem(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


def float_tensor(p: Param, model_dtype: str) -> Tensor:
    return Tensor(p.name, p.shape, p.dtype or model_dtype, p.name, "weight")


def read_parts(reader, p: Param) -> list[np.ndarray]:
    """A parameter's Hugging Face tensors as they lie in the source (views where they can be), each in
    the parameter's orientation: the float weight is these joined along axis 0."""
    parts = [reader.get(name) for name in p.hf]
    if p.transposed:
        parts = [np.ascontiguousarray(np.asarray(x).T) for x in parts]
    return parts


def read_float(reader, p: Param) -> np.ndarray:
    """A parameter's float weight from the source: its Hugging Face tensors joined along axis 0."""
    parts = read_parts(reader, p)
    if len(parts) == 1:
        return parts[0]
    dtype = np.result_type(*parts)
    joined = np.concatenate([np.asarray(x, dtype=dtype) for x in parts], axis=0)
    return joined.reshape(p.shape) if len(p.shape) == 3 else joined  # stacked experts: [E, n, k]


def as_stored(t: Tensor, w: np.ndarray) -> list[tuple[Tensor, np.ndarray]]:
    return [(t, np.ascontiguousarray(w, dtype=t.dtype))]
