"""quantize: stream the source tensors through a quantization scheme, one parameter at a time.

EPHEMERAL: its output (the tensors written straight into the shards of shard's default plan, each
shard's md5 taken on the way) is linked by shard and then dropped; only the sharded weights are stored.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
from pathlib import Path

import numpy as np

from llmc import quant as quantization
from llmc.families.base import Param
from llmc.graph import progress
from llmc.sources import open_reader
from llmc.stages import shard

NAME = "quantize"
VERSION = "4"
EPHEMERAL = True
TOOLS = ("python", "llmc", "numpy", "gguf", "safetensors", "torch")
DEFAULTS = {"quantization": "q0f32", "mode": "search"}


def _importance(folder: Path | None) -> dict:
    if folder is None:
        return {}
    with np.load(folder / "importance.npz") as saved:
        return {name: saved[name] for name in saved.files}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    model = json.loads((inputs["model"] / "model.json").read_text())
    s = quantization.scheme(options["quantization"])
    params = [Param(p["name"], tuple(p["shape"]), p["kind"], tuple(p["hf"]), p["dtype"], p.get("transposed", False))
              for p in model["params"]]
    reader = open_reader(model["source_format"], inputs["weights"], model["files"],
                         gguf_plan=(model["model_type"], model["model_config"]))
    records = []
    choice = quantization.Choice(options["mode"], _importance(inputs.get("calibration")))
    shards = shard.ShardWriter(out_dir / "shards", [t.nbytes for t in quantization.spec(params, s)])

    def write(p: Param, made: list[np.ndarray]) -> None:
        for arr in made:
            shards.add(memoryview(arr).cast("B"))
        for name in p.hf:  # this parameter's source pages are no longer needed
            reader.release(name)

    # One writer thread, one parameter behind: a parameter is quantized while the last one is written.
    with progress.task(f"quantize {s.name}", total=len(params)) as bar, contextlib.closing(shards), \
            concurrent.futures.ThreadPoolExecutor(1) as writer:
        writing = None
        for p in params:
            made = []
            for t, arr in quantization.convert(p, reader, s, choice):
                if tuple(arr.shape) != t.shape or arr.dtype != np.dtype(t.dtype):
                    raise AssertionError(f"{t.name}: made {arr.shape} {arr.dtype}, spec says {t.shape} {t.dtype}")
                file, offset = shards.location(len(records))
                made.append(np.ascontiguousarray(arr))
                records.append({"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "file": file,
                                "offset": offset, "nbytes": t.nbytes})
            if writing is not None:
                writing.result()
                bar.advance()
            writing = writer.submit(write, p, made)
            del made
        if writing is not None:
            writing.result()
            bar.advance()
    # the elements of the model's parameters (MLC's loader.stats.total_param_num), for BitsPerParam
    meta = {"source_elements": quantization.param_count(params), "quantization": s.name,
            "mode": options["mode"], "calibrated": "calibration" in inputs,
            "relative_rms_error": {name: (err / ref) ** 0.5 if ref else 0.0
                                   for name, (err, ref) in choice.errors.items()}}
    (out_dir / "tensors.json").write_text(json.dumps({"metadata": meta, "tensors": records,
                                                      "shards": shards.record()}, indent=1))
