"""Reading MLC weight folders (tensor-cache.json or ndarray-cache.json and params_shard_*.bin)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

INDEX_NAMES = ("tensor-cache.json", "ndarray-cache.json")


class WeightsError(ValueError):
    pass


def index_path(folder: Path) -> Path:
    for name in INDEX_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"{folder} has no tensor-cache.json or ndarray-cache.json (run llmc convert_weight)")


def check_shard(folder: Path, shard: dict) -> None:
    """A shard's size and md5 (as tensor-cache.json records them): a corrupt file is refused, not run."""
    path = folder / shard["dataPath"]
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise WeightsError(f"weight shard {path} is missing") from None
    if "nbytes" in shard and size != shard["nbytes"]:
        raise WeightsError(f"weight shard {path} has {size} bytes, tensor-cache.json says {shard['nbytes']}")
    if shard.get("md5sum"):
        md5 = hashlib.md5()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                md5.update(chunk)
        if md5.hexdigest() != shard["md5sum"]:
            raise WeightsError(f"weight shard {path} is corrupt: its md5 is not the one tensor-cache.json records")


def load_arrays(folder: Path, names: list[str]) -> list[np.ndarray]:
    """The named tensors, in the order asked, as numpy arrays backed by the shard files."""
    folder = Path(folder)
    index = json.loads(index_path(folder).read_text())
    records = {}
    for shard in index.get("records", []):
        check_shard(folder, shard)
        for rec in shard.get("records", []):
            records[rec["name"]] = (shard["dataPath"], rec)
    maps: dict[str, np.memmap] = {}
    out = []
    for name in names:
        if name not in records:
            raise WeightsError(f"weights in {folder} have no tensor {name}")
        path, rec = records[name]
        if path not in maps:
            maps[path] = np.memmap(folder / path, dtype=np.uint8, mode="r")
        raw = maps[path][rec["byteOffset"]: rec["byteOffset"] + rec["nbytes"]]
        if rec.get("format", "raw") == "f32-to-bf16":
            out.append((raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(rec["shape"]))
        else:
            out.append(raw.view(np.dtype(rec["dtype"])).reshape(rec["shape"]))
    return out
