"""lower: model definition -> Relax pipeline -> TIR -> LLVM IR (lib0.ll, devc.ll) and metadata.json."""
from __future__ import annotations

from pathlib import Path

from llmc import devices, floats

NAME = "lower"
VERSION = "14"
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
    "cuda_archs": [], "active_vocab_size": 0,
}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    """TVM runs in a child process: a crash inside it is a one-line error, not the end of the command."""
    from llmc.graph import isolated

    isolated.call(f"{__name__}:lower_here", {"options": options, "out_dir": str(out_dir)}, describe(options))


def describe(options: dict) -> str:
    """'lower for cuda (sm_80+sm_90) of llama q4f16_1': the stage, device and model, for errors."""
    target = options["target"]
    detail = "+".join(options.get("cuda_archs") or []) or target.get("host", target).get("mtriple", "")
    kind = "cpu" if target["kind"] == "llvm" else target["kind"]
    device = f"{kind} ({detail})" if detail else kind
    return f"{NAME} for {device} of {options['model_type']} {options['quantization']}"


def lower_here(options: dict, out_dir: str) -> None:
    from llmc.compiler.lowering import lower

    spec = floats.from_key(dict(options))
    target = spec.pop("target")
    lower(spec, target, Path(out_dir))
