"""Readers for weight files: each exposes Hugging Face tensor names, shapes, and arrays on demand.

A reader never loads more than the tensor asked for: safetensors and GGUF are
memory-mapped, `get` converts one tensor at a time, and `release` drops a tensor's mapped pages from
the process once it has been used (so a conversion's resident set follows its largest tensor, not the
source file).
"""
from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from llmc.errors import UserError

FORMATS = ("huggingface-safetensor", "huggingface-torch", "gguf", "awq")


def detect_format(root: Path, files: list[str], quantization_kind: str) -> str:
    """The source format of a folder's files; safetensors hold AutoAWQ's tensors when the scheme is AWQ."""
    names = [Path(f).name for f in files]
    if any(n.endswith(".gguf") for n in names):
        return "gguf"
    if any(n.endswith(".safetensors") for n in names):
        if quantization_kind == "awq":
            return "awq"
        return "huggingface-safetensor"
    if any(n.endswith(".bin") for n in names):
        return "huggingface-torch"
    raise UserError(f"no weights found in {root} (looked for *.safetensors, pytorch_model*.bin, *.gguf)")


def weight_files(root: Path, fmt: str) -> list[str]:
    """The weight files of a model folder for a format, relative to root."""
    if fmt in ("huggingface-safetensor", "awq"):
        index = root / "model.safetensors.index.json"
        pattern, index_files = "*.safetensors", [index] if index.exists() else []
    elif fmt == "huggingface-torch":
        index = root / "pytorch_model.bin.index.json"
        pattern, index_files = "*.bin", [index] if index.exists() else []
    elif fmt == "gguf":
        pattern, index_files = "*.gguf", []
    else:
        raise UserError(f"unknown source format {fmt!r}; known: auto, {', '.join(FORMATS)}")
    if index_files:
        import json

        try:
            mapping = json.loads(index_files[0].read_text())["weight_map"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{index_files[0]} is not a valid weight index: {exc}") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise UserError(f"{index_files[0]} is not a valid weight index: weight_map must map each tensor "
                            "name to one file name")
        files = sorted(set(mapping.values())) + [index_files[0].name]
    else:
        files = sorted(p.name for p in root.glob(pattern) if p.is_file())
        if fmt == "huggingface-torch":
            files = [f for f in files if f.startswith("pytorch_model") or f == "model.bin"] or files
    if not files:
        raise UserError(f"no {fmt} weights in {root}")
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise UserError(f"weight file {root / missing[0]} is missing")
    if fmt == "gguf" and len(files) > 1:
        raise UserError(f"{root} holds several .gguf files; pass the one to use as --source")
    return files


def open_reader(fmt: str, root: Path, files: list[str], gguf_plan=None):
    if fmt in ("huggingface-safetensor", "awq"):
        from llmc.sources.safetensors_file import SafetensorsReader

        return SafetensorsReader(root, [f for f in files if f.endswith(".safetensors")])
    if fmt == "huggingface-torch":
        from llmc.sources.torch_file import TorchReader

        return TorchReader(root, [f for f in files if f.endswith(".bin")])
    if fmt == "gguf":
        from llmc.sources.gguf_file import GGUFReader

        return GGUFReader(root / files[0], gguf_plan)
    raise UserError(f"unknown source format {fmt!r}; known: auto, {', '.join(FORMATS)}")


def release_pages(mapped: np.memmap | None, start: int, end: int) -> None:
    """Drop bytes [start, end) of a read-only file mapping from this process's resident set: the pages
    stay in the page cache (reclaimable) and a later read faults them in again, so releasing a page a
    neighbouring tensor shares is harmless."""
    m = getattr(mapped, "_mmap", None)
    if m is None or not hasattr(m, "madvise") or end <= start:
        return
    lo, hi = start // mmap.PAGESIZE * mmap.PAGESIZE, min(len(m), -(-end // mmap.PAGESIZE) * mmap.PAGESIZE)
    if hi > lo:
        m.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
