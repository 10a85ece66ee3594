"""llama.cpp GGUF files: metadata as a config, tensors dequantized under Hugging Face names.

The header is read by llmc.sources.gguf_header; dequantization goes through the `gguf` package, a chunk
of rows at a time, and llama.cpp's rotary row permutation of q/k is undone while rows are copied out.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from llmc.errors import UserError
from llmc.families import ALIASES, architecture
from llmc.families.base import num_layers

# What people download, and what the gguf package dequantizes (i-quants and ternary types it does not).
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
_CHUNK_ELEMS = 1 << 22


def _open(path: Path):
    st = Path(path).stat()
    return _open_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _open_cached(path: str, size: int, mtime_ns: int):
    from llmc.sources.gguf_header import GGUFHeader

    try:
        return GGUFHeader(path)
    except Exception as exc:  # noqa: BLE001 - a malformed file raises ValueError, struct.error, OSError...
        raise UserError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc})") from None


def metadata(reader, wanted=None) -> dict:
    return {key: value for key, value in reader.fields.items()
            if wanted is None or any(key.startswith(w) for w in wanted)}


def model_type_of(meta: dict, path: Path) -> str:
    arch = meta.get("general.architecture")
    if arch not in ALIASES:
        raise UserError(f"{path}: GGUF architecture {arch!r} is not supported")
    return ALIASES[arch]


def hf_config(reader, path: Path) -> tuple[str, dict]:
    """(model_type, Hugging Face-style config) from a GGUF's metadata and tensor list."""
    meta = metadata(reader)
    model_type = model_type_of(meta, path)
    arch = meta["general.architecture"]
    if model_type == "llama" and any("_exps." in t.name for t in reader.tensors):  # llama.cpp's Mixtral
        model_type = "mixtral"
    hf = architecture(model_type).gguf_config(meta, arch)
    hf["model_type"] = model_type
    hf.setdefault("tie_word_embeddings", not any(t.name == "output.weight" for t in reader.tensors))
    if any(t.name == "blk.0.attn_output.bias" for t in reader.tensors):
        hf["attention_bias"] = True  # llama.cpp writes the biases a checkpoint has (qwen3's attention_bias)
    for key, name in (("bos_token_id", "tokenizer.ggml.bos_token_id"),
                      ("eos_token_id", "tokenizer.ggml.eos_token_id"),
                      ("pad_token_id", "tokenizer.ggml.padding_token_id")):
        if name in meta:
            hf[key] = int(meta[name])
    if model_type == "llama" and hf.get("sliding_window"):
        hf["model_type"] = model_type = "mistral"
    return model_type, hf


def name_map(model_type: str, cfg: dict) -> dict[str, str]:
    arch = architecture(model_type)
    out = {}
    for pattern, hf in arch.GGUF_NAMES.items():
        if "{i}" in pattern:
            for i in range(num_layers(cfg)):
                out[pattern.format(i=i)] = hf.replace("{i}", str(i))  # an experts name keeps its {e}
        else:
            out[pattern] = hf
    return out


class GGUFReader:
    """Tensors of a GGUF file under Hugging Face names. plan = (model_type, model_config)."""

    def __init__(self, path: Path, plan):
        self.path = path
        self.reader = _open(path)
        model_type, cfg = plan
        names = name_map(model_type, cfg)
        ignored = set(architecture(model_type).GGUF_IGNORED)
        self.unpermute = architecture(model_type).gguf_unpermute(cfg)
        self.to_hf = getattr(architecture(model_type), "gguf_to_hf", None)
        self.head_dim = cfg.get("head_dim")
        self.tensors = {}
        self.expert = {}  # a Hugging Face name -> its index in a stacked experts tensor
        for t in self.reader.tensors:
            if t.name in ignored:
                continue
            if t.name not in names:
                raise UserError(f"{path}: unexpected tensor {t.name} for a {model_type} model")
            if t.tensor_type.name not in SUPPORTED_TYPES:
                raise UserError(f"{path}: tensor {t.name} has type {t.tensor_type.name}; supported: "
                                f"{', '.join(SUPPORTED_TYPES)}")
            if "{e}" in names[t.name]:  # [E, n, k]: expert e's tensor is slice e
                for e in range(int(t.shape[-1]) if len(t.shape) == 3 else 0):
                    self.tensors[names[t.name].format(e=e)] = t
                    self.expert[names[t.name].format(e=e)] = e
                continue
            self.tensors[names[t.name]] = t

    def shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {n: (self._hf_shape(n, self._stored(n)[1]), self.tensors[n].tensor_type.name) for n in self.tensors}

    def _stored(self, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
        """The tensor's data and its shape in numpy order: an expert's slice of a stacked tensor."""
        t = self.tensors[name]
        shape = tuple(int(d) for d in reversed(t.shape))
        e = self.expert.get(name)
        return (t.data, shape) if e is None else (t.data[e], shape[1:])

    def _hf_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.to_hf is None:
            return shape
        return self.to_hf(name, np.empty(shape, np.float32)).shape  # never written: pages stay untouched

    def get(self, name: str) -> np.ndarray:
        import gguf

        t = self.tensors[name]
        stored, shape = self._stored(name)
        if t.tensor_type.name == "F32" and name not in self.unpermute:
            return self._as_hf(name, np.asarray(stored).reshape(shape))
        rows = shape[0] if len(shape) > 1 else 1
        if t.tensor_type.name == "F16" and self.to_hf is None:
            # float16 as stored (a view of the mapping; the rows in Hugging Face order copied in float16):
            # the quantizer widens a few rows at a time, so no float32 copy of a whole tensor is made
            w = np.asarray(stored).reshape(rows, -1)
            target = self._row_targets(name, rows)
            if target is not None:
                order = np.empty_like(target)
                order[target] = np.arange(rows)
                w = w[order]
            return w.reshape(shape)
        cols = int(np.prod(shape)) // rows
        data = np.asarray(stored).reshape(rows, -1)
        out = np.empty((rows, cols), np.float32)
        target = self._row_targets(name, rows)
        step = max(1, _CHUNK_ELEMS // max(cols, 1))
        for r in range(0, rows, step):
            try:
                chunk = gguf.quants.dequantize(data[r:r + step], t.tensor_type).reshape(-1, cols)
            except Exception as exc:  # noqa: BLE001
                raise UserError(f"{self.path}: cannot dequantize {t.name}: {exc}") from None
            if target is None:
                out[r:r + step] = chunk
            else:
                out[target[r:r + step]] = chunk
        return self._as_hf(name, out.reshape(shape))

    def release(self, name: str) -> None:
        from llmc.sources import release_pages

        t = self.tensors.get(name)
        if t is not None:
            release_pages(self.reader.data, t.data_offset, t.data_offset + t.n_bytes)

    def _as_hf(self, name: str, w: np.ndarray) -> np.ndarray:
        return w if self.to_hf is None else self.to_hf(name, w)

    def _row_targets(self, name: str, rows: int) -> np.ndarray | None:
        """Where each stored row of a permuted q/k weight goes in Hugging Face order."""
        heads = self.unpermute.get(name)
        if heads is None:
            return None
        hd = rows // heads
        g = np.arange(rows)
        h, rem = g // hd, g % hd
        return h * hd + (rem % 2) * (hd // 2) + rem // 2
