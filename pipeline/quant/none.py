"""q0f16, q0f32: weights stored as floats in the model dtype."""
from __future__ import annotations

import numpy as np

from llmc.families.base import Param
from llmc.quant.base import Choice, Tensor, as_stored, float_tensor, read_float
from llmc.quant.layout import Scheme

KIND = "none"


def is_quantized(p: Param, s: Scheme) -> bool:
    return False


def tensors(p: Param, s: Scheme) -> list[Tensor]:
    return [float_tensor(p, s.model_dtype)]


def convert(p: Param, reader, s: Scheme, choice: Choice) -> list[tuple[Tensor, np.ndarray]]:
    return as_stored(tensors(p, s)[0], read_float(reader, p))
