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


def shard_file(n: int) -> str:
    return f"params_shard_{n}.bin"


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


class ShardWriter:
    """Writes tensors, in order, straight into the shards of a plan (quantize does, while the next tensor
    is quantized), taking each shard's md5 on the way: shard then links those files and reads nothing."""

    def __init__(self, folder: Path, sizes: list[int], cap: int = MAX_SHARD_BYTES):
        self.folder, self.cap, self.sizes = folder, cap, sizes
        self.shards = plan(sizes, cap)  # each shard's members rise in tensor order: its bytes come in order
        self.shard_of, self.offset = {}, {}
        for n, members in enumerate(self.shards):
            at = 0
            for i in members:
                self.shard_of[i], self.offset[i], at = n, at, at + sizes[i]
        self.last_of = [members[-1] for members in self.shards]
        self.hashes = [hashlib.md5() for _ in self.shards]
        self.files: dict[int, object] = {}  # the shards being written: a big tensor's, and the open small one
        self.added = 0
        folder.mkdir(parents=True, exist_ok=True)

    def location(self, i: int) -> tuple[str, int]:
        """(file relative to quantize's folder, byte offset) of tensor i."""
        return f"{self.folder.name}/{shard_file(self.shard_of[i])}", self.offset[i]

    def add(self, data: memoryview) -> None:
        i = self.added
        if data.nbytes != self.sizes[i]:
            raise AssertionError(f"tensor {i}: {data.nbytes} bytes, the plan says {self.sizes[i]}")
        n = self.shard_of[i]
        if n not in self.files:
            self.files[n] = open(self.folder / shard_file(n), "wb")
        out = self.files[n]
        out.write(data)
        self.hashes[n].update(data)
        if i == self.last_of[n]:
            out.flush()
            atomic.start_writeback(out.fileno())  # publish's fsync then finds it written
            out.close()
            del self.files[n]
        self.added += 1

    def close(self) -> None:
        for out in self.files.values():
            out.close()
        self.files.clear()

    def record(self) -> dict:
        return {"max_shard_bytes": self.cap, "sizes": self.sizes, "md5": [h.hexdigest() for h in self.hashes]}


def known_md5(listing: dict, sizes: list[int], cap: int) -> list[str] | None:
    """The shards' md5s quantize took as it wrote them, if its plan is this one."""
    known = listing.get("shards")
    if not known or known.get("max_shard_bytes") != cap or known.get("sizes") != sizes:
        return None
    return known["md5"]


def _write_shard(dest: Path, parts: list[tuple[Path, int, int]]) -> str:
    """Write a shard from byte ranges (file, offset, size) of quantize's files; return its md5 (MLC's index
    records it), hashed from the bytes as they are copied."""
    h = hashlib.md5()
    with open(dest, "wb") as out:
        for path, offset, size in parts:
            with open(path, "rb") as f:
                f.seek(offset)
                while size > 0 and (chunk := f.read(min(size, 8 << 20))):
                    h.update(chunk)
                    out.write(chunk)
                    size -= len(chunk)
        out.flush()
        atomic.start_writeback(out.fileno())
    return h.hexdigest()


def _link(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


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
    sizes = [t["nbytes"] for t in tensors]
    records = []
    total = 0
    shards = plan(sizes, options["max_shard_bytes"])
    md5s = known_md5(listing, sizes, options["max_shard_bytes"])

    def write(n: int) -> str:
        dest = out_dir / shard_file(n)
        if md5s is not None:  # quantize wrote this very shard
            _link(src / tensors[shards[n][0]]["file"], dest)
            return md5s[n]
        return _write_shard(dest, [(src / tensors[i]["file"], tensors[i]["offset"], sizes[i]) for i in shards[n]])

    # links where quantize wrote the shards; otherwise md5 and copies, which let go of the GIL: two
    # shards at a time keep both cores busy
    with progress.task("shard", total=len(tensors)) as bar, concurrent.futures.ThreadPoolExecutor(2) as pool:
        for n, (members, md5) in enumerate(zip(shards, pool.map(write, range(len(shards))))):
            name = shard_file(n)
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
