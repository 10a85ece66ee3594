"""quantize: stream the source tensors through a quantization scheme, one parameter at a time.

EPHEMERAL: its output (one raw file per stored tensor) is read by shard and
then dropped; only the sharded weights are stored.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import progress, quantization
from ..models.base import Param
from ..sources import open_reader

NAME = "quantize"
VERSION = "1"
EPHEMERAL = True
TOOLS = ("python", "llmc", "numpy", "gguf", "safetensors", "torch")
DEFAULTS = {"quantization": "q0f32"}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    model = json.loads((inputs["model"] / "model.json").read_text())
    s = quantization.scheme(options["quantization"])
    params = [Param(p["name"], tuple(p["shape"]), p["kind"], tuple(p["hf"]), p["dtype"]) for p in model["params"]]
    reader = open_reader(model["source_format"], inputs["weights"], model["files"],
                         gguf_plan=(model["model_type"], model["model_config"]))
    (out_dir / "tensors").mkdir()
    records = []
    with progress.task(f"quantize {s.name}", total=len(params)) as bar:
        for p in params:
            outs = _awq(reader, p, s) if (s.kind == "awq" and quantization.is_quantized(p, s)) \
                else quantization.quantize(p, _read(reader, p), s)
            for t, arr in outs:
                if tuple(arr.shape) != t.shape or arr.dtype != np.dtype(t.dtype):
                    raise AssertionError(f"{t.name}: made {arr.shape} {arr.dtype}, spec says {t.shape} {t.dtype}")
                rel = f"tensors/{len(records):05d}.bin"
                with open(out_dir / rel, "wb") as f:
                    f.write(memoryview(np.ascontiguousarray(arr)).cast("B"))
                records.append({"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "file": rel})
            del outs
            bar.advance()
    meta = {"ParamSize": quantization.param_count(params), "quantization": s.name}
    (out_dir / "tensors.json").write_text(json.dumps({"metadata": meta, "tensors": records}, indent=1))


def _read(reader, p: Param) -> np.ndarray:
    parts = [reader.get(name) for name in p.hf]
    if len(parts) == 1:
        return parts[0]
    dtype = np.result_type(*parts)
    return np.concatenate([np.asarray(x, dtype=dtype) for x in parts], axis=0)


def _awq(reader, p: Param, s) -> list:
    """AutoAWQ tensors, fused along the output axis; int32 words are kept bit for bit as uint32."""
    outs = quantization.tensors(p, s)
    bases = [name[: -len(".weight")] for name in p.hf]
    arrays = []
    for t in outs:
        parts = [np.asarray(reader.raw(f"{b}.{t.role}") if hasattr(reader, "raw") else reader.get(f"{b}.{t.role}"))
                 for b in bases]
        joined = np.concatenate(parts, axis=1)
        joined = joined.view(np.uint32) if t.dtype == "uint32" else joined.astype(t.dtype)
        arrays.append((t, np.ascontiguousarray(joined)))
    return arrays
