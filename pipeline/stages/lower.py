"""lower: model definition -> Relax pipeline -> TIR -> LLVM IR (lib0.ll, devc.ll) and metadata.json."""
from __future__ import annotations

from pathlib import Path

from .. import floats

NAME = "lower"
VERSION = "13"
def TOOLS(options: dict, target: dict | None) -> tuple[str, ...]:  # noqa: N802 - the stage protocol's name
    """nvcc builds CUDA kernels inside lower (at TVM's build time), so its version keys CUDA libraries."""
    cuda = target is not None and target.get("kind") == "cuda"
    return ("python", "llmc", "tvm") + (("nvcc",) if cuda else ())
DEFAULTS = {
    "model_type": "llama", "quantization": "q0f32", "model_config": {}, "params": [],
    "context_window_size": 0, "sliding_window_size": -1, "prefill_chunk_size": 0, "attention_sink_size": 0,
    "max_batch_size": 1, "tensor_parallel_shards": 1, "opt": {}, "system_lib": False, "system_lib_prefix": "",
    "cuda_archs": [],
}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    from ..compiler.lowering import lower

    spec = floats.from_key(dict(options))
    target = spec.pop("target")
    lower(spec, target, out_dir)
