"""load: read a model's config and the index of its weight files; check every tensor is there.

Output `model.json`: model type, MLC model_config, source format, and per float
parameter the Hugging Face tensors it is made of. Weights are not copied: the
quantize stage streams them from the same source files (an input of its own).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from llmc import families as models
from llmc.errors import UserError
from llmc.families.base import num_layers
from llmc.sources import hf_config as hfconfig
from llmc.sources import open_reader

NAME = "load"
VERSION = "1"
TOOLS = ("python", "llmc", "numpy", "gguf", "safetensors")
EPHEMERAL = False
DEFAULTS = {"model_type": "auto", "source_format": "huggingface-safetensor", "files": [], "preset": "",
            "config_file": "config.json", "quantization_kind": "none"}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    weights_dir = inputs["weights"]
    files = list(options["files"])
    fmt = options["source_format"]
    gguf_path = weights_dir / files[0] if fmt == "gguf" else None
    hf = hfconfig.load(inputs.get("config"), gguf_path, options["preset"], options["config_file"])
    model_type = models.detect(hf, options["model_type"])
    cfg = models.model_config(hf, model_type)
    params = models.params(model_type, cfg)
    reader = open_reader(fmt, weights_dir, files, gguf_plan=(model_type, cfg))
    found = reader.shapes()
    if fmt == "awq":
        _check_awq(params, found)
    else:
        if options["quantization_kind"] == "awq":
            raise UserError("q4f16_awq needs a pre-quantized AutoAWQ checkpoint (--source-format awq)")
        _check(models.architecture(model_type).hf_shapes(cfg), found, weights_dir)
    prefix = cfg.get("weight_prefix", "")  # the text model inside a multimodal checkpoint
    _check_layers(num_layers(cfg), {n: v for n, v in found.items() if n.startswith(prefix)}, weights_dir)
    record = {
        "model_type": model_type,
        "source_format": fmt,
        "files": files,
        "model_config": cfg,
        "hf_config": hf,
        "params": [{"name": p.name, "shape": list(p.shape), "kind": p.kind, "hf": list(p.hf),
                    "dtype": p.dtype, **({"transposed": True} if p.transposed else {})} for p in params],
    }
    (out_dir / "model.json").write_text(json.dumps(record, indent=1, sort_keys=True))


LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")


def _check_layers(layers: int, found: dict, where: Path) -> None:
    """Weights with more layers than the config would convert into a truncated model: refuse them."""
    extra = sorted({int(m.group(1)) for name in found if (m := LAYER_INDEX.search(name))} - set(range(layers)))
    if extra:
        raise UserError(f"the weights in {where} have layer(s) {extra[0]}..{extra[-1]} beyond the config's "
                        f"num_hidden_layers={layers}: the config does not describe these weights")


def _check(expected: dict[str, tuple[int, ...]], found: dict, where: Path) -> None:
    for name, shape in expected.items():
        if name not in found:
            raise UserError(f"tensor {name} is missing from the weights in {where}")
        got, dtype = found[name]
        if tuple(got) != tuple(shape):
            raise UserError(f"tensor {name} has shape {list(got)}, expected {list(shape)} from the config")
        if "int" in dtype or dtype == "bool":
            raise UserError(f"tensor {name} has dtype {dtype}, not a float type")


def _check_awq(params, found: dict) -> None:
    from llmc.quant import SCHEMES

    s = SCHEMES["q4f16_awq"]
    for p in params:
        if p.kind != "linear":
            _check({p.hf[0]: p.shape}, found, Path("the AWQ checkpoint"))
            continue
        total = 0
        for hf in p.hf:
            base = hf[: -len(".weight")]
            if f"{base}.qweight" not in found:
                raise UserError(f"tensor {base}.qweight is missing from the AWQ checkpoint")
            k = p.shape[1]
            n = found[f"{base}.qweight"][0][1] * s.per_word
            total += n
            want = {f"{base}.qweight": (k, n // s.per_word), f"{base}.qzeros": (k // s.group_size, n // s.per_word),
                    f"{base}.scales": (k // s.group_size, n)}
            for name, shape in want.items():
                if name not in found:
                    raise UserError(f"tensor {name} is missing from the AWQ checkpoint")
                if tuple(found[name][0]) != shape:
                    raise UserError(f"tensor {name} has shape {list(found[name][0])}, expected {list(shape)}")
        if total != p.shape[0]:
            raise UserError(f"AWQ tensors of {p.name} have {total} outputs, expected {p.shape[0]}")
