"""compile: mlc-chat-config.json -> lower -> codegen -> link -> a model library, through the store."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from llmc import devices, floats
from llmc import families as models
from llmc import quant as quantization
from llmc.commands import outputs
from llmc.commands.result import Built, Result
from llmc.errors import BuildFailed, NotAvailable, UserError
from llmc.families.base import MAX_CONTEXT
from llmc.graph.runner import Runner, Source, Step
from llmc.quant.layout import has_int8_kernel_layout
from llmc.sources.hf_config import read_json
from llmc.stages import codegen, link, lower
from llmc.store import ref_segment

SIZE_KEYS = ("context_window_size", "sliding_window_size", "prefill_chunk_size", "attention_sink_size",
             "max_batch_size", "tensor_parallel_shards")
OVERRIDE_ALIASES = {"sliding_window": "sliding_window_size"}
# MLC's --opt flags; none of them exists in this TVM build or for these targets.
MLC_FLAGS = ("flashinfer", "cublas_gemm", "faster_transformer", "cudagraph", "cutlass")
# int8_activations: the matmuls of 4-bit layers (prefill and decode) with int8-quantized activations and
# integer dot products (VNNI's VPDPBUSD, else AVX2's VPMADDUBSW), as llama.cpp's Q4_0 x Q8_0 dot products are.
# Not exact (0.1% perplexity on SmolLM2), but 2.8-4.4x the exact kernels' decode on SmolLM2, so part of the default
# O2 on x86 CPUs with AVX2, as MLC's O2 turns on kernels that are not exact either; O1 is the exact level (logits
# of transformers on the dequantized weights) for tests and anyone who wants those numbers.
LLMC_FLAGS = ("cpu_schedules", "int8_activations")
OPT_LEVELS = {
    "O0": {"cpu_schedules": False, "int8_activations": False},
    "O1": {"cpu_schedules": True, "int8_activations": False},
    "O2": {"cpu_schedules": True, "int8_activations": True},
    "O3": {"cpu_schedules": True, "int8_activations": True},
}
DEFAULT_OPT = "O2"


def chat_config_path(model: str) -> Path:
    path = Path(model).expanduser()
    if path.is_dir():
        path = path / "mlc-chat-config.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist: MODEL is mlc-chat-config.json or the folder holding it "
                        "(run llmc gen_config first)")
    return path


def parse_overrides(text: str) -> dict[str, int]:
    out = {}
    for item in filter(None, (p.strip() for p in (text or "").split(";"))):
        key, sep, value = item.partition("=")
        key = OVERRIDE_ALIASES.get(key.strip(), key.strip())
        if not sep or key not in SIZE_KEYS:
            raise UserError(f"unknown override {item!r}; keys: {', '.join(SIZE_KEYS)} (or sliding_window)")
        try:
            out[key] = int(value)
        except ValueError:
            raise UserError(f"override {key} must be an integer, not {value!r}") from None
    return out


def parse_opt(text: str, device: devices.Device, quant: str = "",
              cache_dir: Path | None = None) -> tuple[dict, list[str]]:
    """--opt O0..O3 or "flag=0/1;...": our flags, and notes about flags narrowed away.
    cache_dir remembers what the CPU can do, so a cached compile never imports TVM."""
    text = (text or DEFAULT_OPT).strip()
    if text in OPT_LEVELS:  # a note when O3 falls back to exact kernels; the default does so quietly
        return _narrow(dict(OPT_LEVELS[text]), device, quant, [], text == "O3", cache_dir)
    flags, notes = dict(OPT_LEVELS["O1"]), []
    for item in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or value.strip() not in ("0", "1") or key not in MLC_FLAGS + LLMC_FLAGS:
            raise UserError(f"bad --opt {item!r}: use O0..O3 or flag=0|1 with flags "
                            f"{', '.join(MLC_FLAGS + LLMC_FLAGS)}")
        if key in MLC_FLAGS:
            if value.strip() == "1":
                notes.append(f"--opt {key}=1 is not available for {device.name} with this TVM build; using 0")
            continue
        flags[key] = value.strip() == "1"
    return _narrow(flags, device, quant, notes, True, cache_dir)


def _narrow(flags: dict, device: devices.Device, quant: str, notes: list[str],
            explicit: bool, cache_dir: Path | None) -> tuple[dict, list[str]]:
    """Flags that cannot apply are turned off (and so do not split the cache), with a note."""
    if flags.get("int8_activations"):
        why = _int8_unavailable(device, quant, cache_dir)
        if why:
            flags["int8_activations"] = False
            if explicit:
                notes.append(f"int8 activations (--opt O3 / int8_activations=1) {why}; using exact kernels")
    return flags, notes


def _int8_unavailable(device: devices.Device, quant: str, cache_dir: Path | None) -> str | None:
    if not device.is_cpu:
        return f"are a CPU feature, not used for {device.name}"
    if not quant or not has_int8_kernel_layout(quantization.scheme(quant)):
        return f"apply to 4-bit group quantization (q4f16_1, q4f32_1), not {quant or 'this model'}"
    if not devices.int8_dot_instruction(device.target, cache_dir):
        return f"need AVX2 or VNNI (x86), which {device.target.get('mcpu', 'this CPU')} lacks"
    return None


def compile_spec(chat: dict, overrides: dict, quant: str | None, model_type: str | None) -> dict:
    """Everything the library depends on: normalized config, sizes, parameter spec (no weight values)."""
    model_type = model_type or chat.get("model_type")
    models.architecture(model_type)
    s = quantization.scheme(quant or chat.get("quantization", ""))
    cfg = dict(chat.get("model_config") or {})
    if not cfg:
        raise UserError("mlc-chat-config.json has no model_config")
    sizes = {k: chat.get(k, cfg.get(k)) for k in SIZE_KEYS}
    sizes["max_batch_size"] = cfg.get("max_batch_size", 1)
    sizes.update(overrides)
    for key, value in sizes.items():
        if value is None:
            raise UserError(f"mlc-chat-config.json has no {key}")
        if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= MAX_CONTEXT:
            raise UserError(f"{key}={value!r} in mlc-chat-config.json must be an integer from -1 to {MAX_CONTEXT}")
    if "sliding_window_size" in cfg:
        cfg["sliding_window_size"], cfg["attention_sink_size"] = sizes["sliding_window_size"], sizes["attention_sink_size"]
    elif sizes["sliding_window_size"] not in (-1, 0):
        raise UserError(f"{model_type} has no sliding-window attention: sliding_window_size does not apply")
    for key in ("context_window_size", "prefill_chunk_size", "max_batch_size", "tensor_parallel_shards"):
        cfg[key] = sizes[key]
    if sizes["prefill_chunk_size"] <= 0 or sizes["max_batch_size"] <= 0:
        raise UserError("prefill_chunk_size and max_batch_size must be positive")
    if sizes["tensor_parallel_shards"] != 1:
        raise NotAvailable(f"tensor_parallel_shards={sizes['tensor_parallel_shards']} needs multi-GPU support "
                           "(NCCL/disco), which llmc does not build; use tensor_parallel_shards=1")
    try:
        params = models.params(model_type, cfg)
    except KeyError as exc:
        raise UserError(f"mlc-chat-config.json's model_config lacks {exc}") from None
    spec = quantization.spec(params, s)
    return {"model_type": model_type, "quantization": s.name, "model_config": cfg, **sizes,
            "active_vocab_size": active_vocab_size(chat, cfg),
            "params": [[t.name, list(t.shape), t.dtype] for t in spec]}


def active_vocab_size(chat: dict, cfg: dict) -> int:
    """The ids the tokenizer can produce (padded vocabularies have fewer than the model's rows): logits
    past them are masked in the library, as MLC's compile does."""
    vocab = cfg.get("vocab_size")
    active = chat.get("active_vocab_size", vocab)
    if active is None:
        return vocab
    if isinstance(active, bool) or not isinstance(active, int) or active < 1:
        raise UserError(f"active_vocab_size={active!r} in mlc-chat-config.json must be a positive integer")
    return min(active, vocab)


def check_weights(folder: Path, spec: dict) -> None:
    """When converted weights sit beside the config, they must be the tensors the library expects."""
    for name in ("tensor-cache.json", "ndarray-cache.json"):
        index = folder / name
        if index.is_file():
            break
    else:
        return
    shards = read_json(index).get("records", [])
    if not isinstance(shards, list) or not all(isinstance(s, dict) and isinstance(s.get("records", []), list)
                                               for s in shards):
        raise UserError(f"{index} is malformed: records must be a list of shards, each with a list of records")
    records = {r["name"]: r for shard in shards for r in shard.get("records", []) if isinstance(r, dict) and "name" in r}
    for name, shape, dtype in spec["params"]:
        rec = records.get(name)
        if rec is None:
            raise UserError(f"weights in {folder} have no tensor {name} (convert with --quantization "
                            f"{spec['quantization']})")
        if list(rec["shape"]) != list(shape) or rec["dtype"] != dtype:
            raise UserError(f"tensor {name} in {folder} is {rec['dtype']}{rec['shape']}, the config needs "
                            f"{dtype}{list(shape)}")


PREFIX_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)?$")
SYSTEM_LIB_FORMATS = ("tar", "wasm")


def system_lib_prefix(value: str, spec: dict, device: devices.Device) -> str:
    """--system-lib-prefix: auto is "{model_type}_{quantization}_" for app builds, "" elsewhere."""
    if value == "auto":
        value = device.system_lib_prefix.format(**spec).replace("-", "_")
    if not PREFIX_RE.match(value):
        raise UserError(f"--system-lib-prefix {value!r} must be a C identifier prefix ([A-Za-z_][A-Za-z0-9_]*)")
    return value


def wasm_runtime() -> Path | None:
    """TVM's web runtime bitcode folder, from $LLMC_WASM_RUNTIME (a folder or its wasm_runtime.bc)."""
    value = os.environ.get("LLMC_WASM_RUNTIME")
    if not value:
        return None
    path = Path(value).expanduser()
    return path.parent if path.is_file() else path


def library_steps(spec: dict, device: devices.Device, fmt: str, opt: dict, prefix: str,
                  runtime: Path | None = None) -> Step:
    system_lib = fmt in SYSTEM_LIB_FORMATS
    options = floats.to_key({**spec, "opt": opt, "system_lib": system_lib,
                             "system_lib_prefix": prefix if system_lib else "", "cuda_archs": list(device.cuda_archs)})
    lowered = Step(lower, options=options, target=device.target)
    objects = Step(codegen, inputs={"lowered": lowered}, target=device.target)
    inputs = {"objects": objects}
    if fmt == "wasm":
        inputs["wasm_runtime"] = Source(runtime, link.WASM_RUNTIME_FILES)
    return Step(link, inputs=inputs, options={"format": fmt, "triple": device.triple}, target=device.target)


def output_format(output: Path, device: devices.Device) -> str:
    """The library kind an output path asks for, checked against what can be built here."""
    suffix = output.suffix
    if suffix not in device.suffixes:
        raise UserError(f"--device {device.name} cannot produce {suffix or 'a file without suffix'}; "
                        f"use one of {', '.join(device.suffixes)}")
    if suffix == ".dll":
        raise NotAvailable("linking a Windows .dll needs an MSVC-compatible linker (lld-link and the Windows "
                           "SDK libraries), which this machine lacks: use -o NAME.tar for the objects")
    fmt = {".dylib": "dylib"}.get(suffix, suffix.lstrip("."))
    if fmt == "wasm":
        runtime = wasm_runtime()
        missing = [n for n in link.WASM_RUNTIME_FILES if runtime is None or not (runtime / n).is_file()]
        if missing:
            raise NotAvailable("a .wasm links TVM's web runtime (wasm_runtime.bc, tvmjs_support.bc, "
                               "webgpu_runtime.bc, built with emscripten from TVM's web/ sources, which no "
                               "package registry offers): set LLMC_WASM_RUNTIME to their folder, or use -o NAME.tar")
    if fmt != "tar":
        link.linker_for(fmt, device.triple)
    devices.check_here(device)
    return fmt


def default_output(folder: Path, model_dir: Path, device: devices.Device) -> Path:
    """`<model folder without -MLC>-<device>.<ext>`, with an extension this machine can build."""
    stem = model_dir.resolve().name.removesuffix("-MLC")
    for suffix in (device.default_suffix, *device.suffixes):
        candidate = folder / f"{stem}-{device.file_tag}{suffix}"
        try:
            output_format(candidate, device)
            return candidate
        except (UserError, NotAvailable):
            continue
    return folder / f"{stem}-{device.file_tag}.tar"


@dataclass
class _Plan:
    device: devices.Device
    output: Path
    fmt: str
    flags: dict
    prefix: str


def _plans(model_dir: Path, output: Path, spec: dict, targets: list[devices.Device], opt: str,
           prefix: str, cache_dir: Path | None) -> tuple[list[_Plan], list[str]]:
    """Every device checked (output kind, linker, flags) before anything is built."""
    many = len(targets) > 1 or str(output).endswith("/") or output.is_dir()
    plans, messages = [], []
    why_cpu = models.cpu_only(spec["model_type"])
    for dev in targets:
        if why_cpu and not dev.is_cpu:
            raise NotAvailable(f"{spec['model_type']} compiles for the cpu device only: {why_cpu}, with no "
                               f"{dev.name} version yet")
        out = default_output(output, model_dir, dev) if many else output
        fmt = output_format(out, dev)
        flags, notes = parse_opt(opt, dev, spec["quantization"], cache_dir)
        messages += [f"note: {n}" for n in notes]
        if dev.prefill_limit and spec["prefill_chunk_size"] > dev.prefill_limit:
            messages.append(f"warning: prefill_chunk_size {spec['prefill_chunk_size']} may exceed "
                            f"{dev.prefill_limit_reason}; consider gen_config --prefill-chunk-size {dev.prefill_limit}")
        plans.append(_Plan(dev, out, fmt, flags, system_lib_prefix(prefix, spec, dev)))
        outputs.check_writable(out, want_dir=False)
    return plans, messages


def compile_model(model: str, output: Path, store, device: str = "cpu", host: str | None = None,
                  opt: str = DEFAULT_OPT, overrides: str = "", quant: str | None = None,
                  model_type: str | None = None,
                  prefix: str = "auto", started: float | None = None) -> Result:
    """One library per device; the Result lists each (device, output, manifest)."""
    output = Path(output)
    config_path = chat_config_path(model)
    chat = read_json(config_path)
    spec = compile_spec(chat, parse_overrides(overrides), quant, model_type)
    check_weights(config_path.parent, spec)
    targets = [devices.resolve(name, host, store.root) for name in devices.split_devices(device)]
    plans, messages = _plans(config_path.parent, output, spec, targets, opt, prefix, store.root)
    built, failed = [], []
    with Runner(store, started) as runner:
        for plan in plans:
            step = library_steps(spec, plan.device, plan.fmt, plan.flags, plan.prefix, wasm_runtime())
            try:
                manifest = runner.manifest(step)
            except BuildFailed as exc:  # the other devices still build
                failed.append(exc)
                continue
            outputs.install_file(store, manifest, link.OUTPUT.format(format=plan.fmt), plan.output)
            store.set_ref(f"compile/{ref_segment(plan.output.name)}", manifest)
            built.append(Built(plan.device.name, plan.output, manifest, runner.key(step)))
        if failed:
            raise BuildFailed(_failure_report(failed, built), tuple(built)) from failed[0]
        return Result(built[0].manifest if len(built) == 1 else None, output, runner.summary(), runner.counts(),
                      messages, built)


def _failure_report(failed: list[BuildFailed], built: list[Built]) -> str:
    done = ", ".join(f"{b.device} -> {b.output}" for b in built)
    return "; ".join(map(str, failed)) + (f"; built: {done}" if done else "")


def jit_library(model: str, store, device: str = "cpu") -> Path:
    """Compile (or find in the store) the library for a model folder; return a loadable path.

    Keyed exactly like `llmc compile` (config, parameter spec, target, options, tool versions):
    after an upgrade of TVM or llmc the key changes and the library is rebuilt, never reused stale.
    """
    config_path = chat_config_path(model)
    spec = compile_spec(read_json(config_path), {}, None, None)
    check_weights(config_path.parent, spec)
    dev = devices.resolve(device, None, store.root)
    flags, _ = parse_opt(DEFAULT_OPT, dev, spec["quantization"], store.root)
    step = library_steps(spec, dev, "so", flags, "")
    with Runner(store) as runner:
        manifest = runner.manifest(step)
        key = runner.key(step)
        from llmc.store import digest

        path = store.root / "jit" / f"{digest.parse(manifest)[0]}.so"
        if not path.exists():
            outputs.install_file(store, manifest, link.OUTPUT.format(format="so"), path)
        store.set_ref(f"jit/{key}", manifest)
    return path
