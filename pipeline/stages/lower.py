"""lower: model definition -> Relax pipeline -> TIR -> LLVM IR (lib0.ll, devc.ll) and metadata.json."""
from __future__ import annotations

from pathlib import Path

from llmc import devices, floats

NAME = "lower"
VERSION = "13"
def TOOLS(options: dict, target: dict | None) -> tuple[str, ...]:  # noqa: N802 - the stage protocol's name
    """The compiler's own source (llmc-compiler: no stale library after an edit), TVM, and tools a device
    runs inside lower (nvcc builds CUDA kernels) key its libraries."""
    base = ("python", "llmc", "llmc-compiler", "tvm")
    return base + (devices.for_target(target).TOOLS if target is not None else ())
EPHEMERAL = False
DEFAULTS = {
    "model_type": "llama", "quantization": "q0f32", "model_config": {}, "params": [],
    "context_window_size": 0, "sliding_window_size": -1, "prefill_chunk_size": 0, "attention_sink_size": 0,
    "max_batch_size": 1, "tensor_parallel_shards": 1, "opt": {}, "system_lib": False, "system_lib_prefix": "",
    "cuda_archs": [],
}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    from llmc.compiler.lowering import lower

    spec = floats.from_key(dict(options))
    target = spec.pop("target")
    lower(spec, target, out_dir)
