"""convert_weight: load -> quantize -> shard, through the store, into an output folder."""
from __future__ import annotations

import json
from pathlib import Path

from llmc import quant as quantization
from llmc.commands import outputs
from llmc.commands.result import Result
from llmc.errors import UserError
from llmc.graph.runner import Runner, Source, Step
from llmc.quant.group import MODES
from llmc.sources.model_input import resolve_config, resolve_source
from llmc.stages import calibrate, load, quantize, shard
from llmc.store import ref_segment


def weights_step(config: str, quant: str, model_type: str = "auto", source: str | None = None,
                 source_format: str = "auto", mode: str = "search", calibration_text: str | None = None) -> Step:
    """The shard step of a conversion (its manifest is the weights artifact)."""
    s = quantization.scheme(quant)
    if mode not in MODES:
        raise UserError(f"--quantization-mode {mode!r}: use one of {', '.join(MODES)}")
    mi = resolve_config(config)
    weights, fmt = resolve_source(mi, source, source_format, s.kind)
    if fmt == "awq" and s.kind != "awq":
        raise UserError(f"an AWQ checkpoint converts only to q4f16_awq, not {s.name}")
    inputs = {"weights": weights}
    config_src = mi.config_source()
    if config_src is not None:
        inputs["config"] = config_src
    load_step = Step(load, inputs=inputs, options={
        "model_type": model_type, "source_format": fmt, "files": list(weights.files),
        "preset": mi.preset, "config_file": mi.config_file, "quantization_kind": s.kind})
    quant_inputs = {"model": load_step, "weights": weights}
    if calibration_text is not None:
        if mode != "search" or s.kind != "group":
            raise UserError("--calibration-text weighs the search of group-quantized codes: it needs "
                            f"--quantization-mode search and a q3/q4 scheme, not {mode} {s.name}")
        text = Path(calibration_text).expanduser()
        if not text.is_file():
            raise UserError(f"--calibration-text {text} is not a file")
        quant_inputs["calibration"] = Step(calibrate, inputs={
            "model": load_step, "weights": weights, "text": Source(text.parent, (text.name,))}, options={
            "source_format": fmt, "files": list(weights.files), "text_file": text.name})
    quant_step = Step(quantize, inputs=quant_inputs, options={"quantization": s.name, "mode": mode})
    return Step(shard, inputs={"tensors": quant_step})


# What MLC's convert_weight --device takes (a TVM device: kind[:index]); llmc quantizes on the CPU either way.
QUANTIZE_DEVICES = ("auto", "cpu", "llvm", "cuda", "gpu", "rocm", "metal", "vulkan", "opencl", "cl", "webgpu")


def check_quantize_device(device: str) -> None:
    kind, sep, index = device.partition(":")
    if kind not in QUANTIZE_DEVICES or (sep and not index.isdigit()):
        raise UserError(f"--device {device!r} is not a device: use one of {', '.join(QUANTIZE_DEVICES)}, "
                        "optionally with :N (quantization runs on the CPU either way)")


def convert_weight(config: str, quant: str, output: Path, store, model_type: str = "auto",
                   source: str | None = None, source_format: str = "auto", started: float | None = None,
                   mode: str = "search", calibration_text: str | None = None) -> Result:
    output = Path(output)
    step = weights_step(config, quant, model_type, source, source_format, mode, calibration_text)
    outputs.check_writable(output)
    with Runner(store, started, hash_sources_while_running=True) as runner:
        manifest = runner.manifest(step)
        outputs.install_dir(store, manifest, output, last=shard.INDEX_NAMES, owned=("params_shard_*.bin",),
                            exclude=(shard.REPORT_FILE,))
        store.set_ref(f"convert_weight/{ref_segment(output.resolve().name)}", manifest)
        return Result(manifest, output, runner.summary(), runner.counts(), quality_lines(store, manifest))


def quality_report(store, manifest: str) -> dict:
    """The weights artifact's quantization report (shard.REPORT_FILE): mode, bits per weight, and each
    quantized tensor's relative RMS error."""
    text = outputs.artifact_text(store, manifest, shard.REPORT_FILE)
    return json.loads(text) if text else {}


def quality_lines(store, manifest: str) -> list[str]:
    report = quality_report(store, manifest)
    errors = report.get("relative_rms_error") or {}
    if not errors:
        return []
    worst = max(errors, key=errors.get)
    how = report.get("mode", "search") + (", calibrated" if report.get("calibrated") else "")
    mean = sum(errors.values()) / len(errors)
    return [(f"quantized {len(errors)} tensors ({how}), {report['bits_per_weight']:.2f} bits per weight: "
             f"relative RMS error mean {mean:.4f}, worst {errors[worst]:.4f} ({worst})")]
