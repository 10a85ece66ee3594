"""Reading converted weights back, written from MLC's documented format (not the project's code)."""
import json
from pathlib import Path

import numpy as np


def read_params(folder: Path, index="tensor-cache.json") -> dict[str, np.ndarray]:
    idx = json.loads((Path(folder) / index).read_text())
    out = {}
    for shard in idx["records"]:
        data = np.fromfile(Path(folder) / shard["dataPath"], dtype=np.uint8)
        assert len(data) == shard["nbytes"]
        for r in shard["records"]:
            assert r["format"] == "raw"
            raw = data[r["byteOffset"]: r["byteOffset"] + r["nbytes"]]
            out[r["name"]] = raw.view(np.dtype(r["dtype"])).reshape(r["shape"])
    return out


def dequantize_group(q_weight: np.ndarray, q_scale: np.ndarray, bits: int, group: int, k: int,
                     layout: str = "NK") -> np.ndarray:
    """Group dequantization from the formula: w = (q - (2**(bits-1) - 1)) * scale, float64."""
    if layout == "KN":
        q_weight, q_scale = q_weight.T, q_scale.T
    per_word = 32 // bits
    n = q_weight.shape[0]
    vals = np.zeros((n, q_weight.shape[1] * per_word), np.int64)
    for j in range(per_word):
        vals[:, j::per_word] = (q_weight.astype(np.int64) >> (j * bits)) & ((1 << bits) - 1)
    max_int = 2 ** (bits - 1) - 1
    scale = np.repeat(q_scale.astype(np.float64), group, axis=1)
    return ((vals - max_int) * scale)[:, :k]


def hf_state(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(f))
    return out


def fused(state: dict, name: str) -> np.ndarray:
    """The float tensor of an MLC parameter name, from Hugging Face tensors."""
    if name.endswith("qkv_proj.weight"):
        b = name[: -len("qkv_proj.weight")]
        return np.concatenate([state[b + f"{x}_proj.weight"] for x in "qkv"])
    if name.endswith("gate_up_proj.weight"):
        b = name[: -len("gate_up_proj.weight")]
        return np.concatenate([state[b + "gate_proj.weight"], state[b + "up_proj.weight"]])
    return state[name]
