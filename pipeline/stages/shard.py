"""shard: pack quantized tensors into params_shard_*.bin with MLC's tensor-cache.json index.

The index is written as both tensor-cache.json (today's name) and
ndarray-cache.json (the name older runtimes and the seed guide read).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
from pathlib import Path

from llmc.graph import progress
from llmc.store import atomic

NAME = "shard"
VERSION = "3"
TOOLS = ("python", "llmc")
EPHEMERAL = False
MAX_SHARD_BYTES = 32 << 20
DEFAULTS = {"max_shard_bytes": MAX_SHARD_BYTES}
INDEX_NAMES = ("tensor-cache.json", "ndarray-cache.json")
# How the quantized codes were chosen and each tensor's relative RMS error: kept with the artifact
# (so a cached run reports it too), not installed into the user's folder.
REPORT_FILE = "quantization-report.json"


def plan(sizes: list[int], cap: int) -> list[list[int]]:
    """Group tensor indices into shards of at most cap bytes; a tensor over half the cap sits alone."""
    shards: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, size in enumerate(sizes):
        if size > cap // 2:
            shards.append([i])
            continue
        if current and used + size > cap:
            shards.append(current)
            current, used = [], 0
        current.append(i)
        used += size
    if current:
        shards.append(current)
    return shards


class ShardHashes:
    """The md5 of each shard of the default plan, fed the tensors' bytes in order as they are made (quantize
    does it while it writes them, so that shard need not read them again)."""

    def __init__(self, sizes: list[int], cap: int = MAX_SHARD_BYTES):
        self.cap, self.sizes = cap, sizes
        shards = plan(sizes, cap)  # each shard's members rise in tensor order, so its bytes arrive in order
        self.shard_of = {i: n for n, members in enumerate(shards) for i in members}
        self.hashes = [hashlib.md5() for _ in shards]
        self.added = 0

    def add(self, data: memoryview) -> None:
        if data.nbytes != self.sizes[self.added]:
            raise AssertionError(f"tensor {self.added}: {data.nbytes} bytes, the plan says {self.sizes[self.added]}")
        self.hashes[self.shard_of[self.added]].update(data)
        self.added += 1

    def record(self) -> dict:
        return {"max_shard_bytes": self.cap, "sizes": self.sizes, "md5": [h.hexdigest() for h in self.hashes]}


def known_md5(listing: dict, sizes: list[int], cap: int) -> list[str] | None:
    """The shards' md5s quantize took as it wrote the tensors, if its plan is this one."""
    known = listing.get("shards")
    if not known or known.get("max_shard_bytes") != cap or known.get("sizes") != sizes:
        return None
    return known["md5"]


def _write_shard(dest: Path, parts: list[Path], md5: str | None = None) -> str:
    """Write the shard; its md5 (MLC's index records it): the one given, or hashed from the bytes as they
    are copied."""
    if len(parts) == 1:
        try:
            # A big tensor is a shard by itself: share the inode instead of writing it again.
            os.link(parts[0], dest)
            return md5 if md5 is not None else _md5_of(parts)
        except OSError:
            pass
    h = hashlib.md5()
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                if md5 is not None:
                    shutil.copyfileobj(f, out, 8 << 20)
                    continue
                while chunk := f.read(8 << 20):
                    h.update(chunk)
                    out.write(chunk)
        out.flush()
        atomic.start_writeback(out.fileno())
    return md5 if md5 is not None else h.hexdigest()


def _md5_of(parts: list[Path]) -> str:
    h = hashlib.md5()
    for part in parts:
        with open(part, "rb") as f:
            while chunk := f.read(8 << 20):
                h.update(chunk)
    return h.hexdigest()


def mlc_metadata(tensor_count: int, total_bytes: int, source_elements: int) -> dict:
    """As MLC's convert_weight writes it (interface/convert_weight.py, _metadata_callback): ParamSize is
    the number of tensors (its runtimes assert len(param names) == ParamSize), ParamBytes a float,
    BitsPerParam the stored bits per element of the source model."""
    return {"ParamSize": tensor_count, "ParamBytes": float(total_bytes),
            "BitsPerParam": total_bytes * 8.0 / source_elements if source_elements else 0.0}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    src = inputs["tensors"]
    listing = json.loads((src / "tensors.json").read_text())
    tensors = listing["tensors"]
    sizes = [(src / t["file"]).stat().st_size for t in tensors]
    records = []
    total = 0
    shards = plan(sizes, options["max_shard_bytes"])
    md5s = known_md5(listing, sizes, options["max_shard_bytes"])

    def write(n: int) -> str:
        return _write_shard(out_dir / f"params_shard_{n}.bin", [src / tensors[i]["file"] for i in shards[n]],
                            None if md5s is None else md5s[n])

    # md5 and file copies let go of the GIL: two shards at a time keep both cores busy
    with progress.task("shard", total=len(tensors)) as bar, concurrent.futures.ThreadPoolExecutor(2) as pool:
        for n, (members, md5) in enumerate(zip(shards, pool.map(write, range(len(shards))))):
            name = f"params_shard_{n}.bin"
            offset, entries = 0, []
            for i in members:
                t = tensors[i]
                entries.append({"name": t["name"], "shape": t["shape"], "dtype": t["dtype"],
                                "format": "raw", "nbytes": sizes[i], "byteOffset": offset})
                offset += sizes[i]
                bar.advance()
            records.append({"dataPath": name, "format": "raw-shard", "nbytes": offset,
                            "records": entries, "md5sum": md5})
            total += offset
    index = {"metadata": mlc_metadata(len(tensors), total, listing["metadata"]["source_elements"]),
             "records": records}
    text = json.dumps(index, indent=2)
    for index_name in INDEX_NAMES:
        (out_dir / index_name).write_text(text)
    meta = listing["metadata"]
    report = {key: meta[key] for key in ("quantization", "mode", "calibrated") if key in meta}
    report["bits_per_weight"] = index["metadata"]["BitsPerParam"]
    report["relative_rms_error"] = meta.get("relative_rms_error", {})
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
