"""A release plan (TOML): models x quantizations x devices, checked whole and expanded into jobs.

    [release]
    output = "dist/release"          # a folder or s3://bucket/prefix
    opt = "O2"

    [[model]]
    source = "models/SmolLM2-135M-Instruct"
    name = "SmolLM2-135M-Instruct"
    conv_template = "chatml"
    quantizations = ["q4f16_1", "q0f32"]
    devices = ["cpu", "iphone"]

    [device.iphone]
    context_window_size = 768

Every mistake (an unknown key, model source, quantization or device) is a UserError naming the plan
entry, raised before any job runs. Relative sources are read from the plan file's folder.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from llmc import devices, quant
from llmc.errors import NotAvailable, UserError
from llmc.stages import gen_config
from llmc.store import canonical, digest

RELEASE_KEYS = {"output", "opt", "quantization_mode"}
MODEL_KEYS = {"source", "weights", "name", "conv_template", "model_type", "quantizations", "devices",
              *gen_config.SIZES}
COMPILE_SIZES = ("context_window_size", "sliding_window_size", "prefill_chunk_size", "attention_sink_size",
                 "max_batch_size")
DEVICE_KEYS = {"format", *COMPILE_SIZES}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
# A release runs on other machines: a plan's "cpu" is the portable x86-64/aarch64 baseline (cpu:generic),
# and "cpu:native" is the building machine's own CPU (then only that kind of machine builds it the same).
PLAN_DEVICE_ALIASES = {"cpu": "cpu:generic", "llvm": "cpu:generic"}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str                      # absolute path, or a preset name
    weights: str | None
    conv_template: str
    model_type: str
    quantizations: tuple[str, ...]
    devices: tuple[str, ...]         # as written in the plan
    sizes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Library:
    """One compile's output: where it goes and what it needs."""
    device: str                      # as written in the plan ("cpu", "iphone")
    resolved: str                    # what compile's --device gets ("cpu:generic")
    path: str                        # libs/<model>-<quant>-<device>.<ext>
    fmt: str
    overrides: str                   # compile --overrides
    tools: tuple[str, ...]           # programs only some machines have


@dataclass(frozen=True)
class Job:
    id: str                          # "convert SmolLM2-135M-Instruct q4f16_1"
    kind: str                        # convert | config | compile
    model: str
    quant: str
    device: str = ""
    deps: tuple[str, ...] = ()
    spec: dict = field(default_factory=dict)   # JSON: everything llmc.release.jobs.run needs


@dataclass(frozen=True)
class Plan:
    path: Path
    output: str
    opt: str
    mode: str
    models: tuple[ModelEntry, ...]
    device_options: dict             # device as written -> its [device.X] table
    digest: str                      # of the plan's meaning, without its output location

    def folder(self, model: str, quantization: str) -> str:
        return f"{model}-{quantization}-MLC"


def load(path: str | Path, output: str | None = None) -> Plan:
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read release plan {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"release", "model", "device"}
    if unknown:
        raise UserError(f"{path}: unknown table {sorted(unknown)[0]!r}; a plan has [release], [[model]], [device.NAME]")
    release = _table(data.get("release", {}), "[release]", RELEASE_KEYS)
    out = output or release.get("output")
    if not isinstance(out, str) or not out.strip():
        raise UserError(f"{path}: [release] output is missing (a folder or s3://bucket/prefix), or pass --output")
    opt = _text(release.get("opt", "O2"), "[release] opt")
    mode = _text(release.get("quantization_mode", "search"), "[release] quantization_mode")
    models = data.get("model")
    if not isinstance(models, list) or not models:
        raise UserError(f"{path}: no [[model]] entries")
    entries = tuple(_model(m, i, path.parent) for i, m in enumerate(models))
    names = [e.name for e in entries]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise UserError(f"{path}: two [[model]] entries are named {dup!r}; give one a different name")
    device_tables = data.get("device", {})
    if not isinstance(device_tables, dict):
        raise UserError(f"{path}: [device] must hold tables such as [device.iphone]")
    used = {d for e in entries for d in e.devices}
    options = {}
    for name, table in device_tables.items():
        if name not in used:
            raise UserError(f"[device.{name}]: no [[model]] builds for device {name!r} (devices in the plan: "
                            f"{', '.join(sorted(used))})")
        options[name] = _table(table, f"[device.{name}]", DEVICE_KEYS)
    if not out.startswith("s3://"):  # --output is relative to the working folder, the plan's to the plan
        out = str(((Path.cwd() if output else path.parent) / Path(out).expanduser()).resolve())
    meaning = {"opt": opt, "mode": mode, "devices": options,
               "models": [{**e.__dict__, "source": _portable(e.source, path.parent),
                           "weights": _portable(e.weights, path.parent)} for e in entries]}
    plan = Plan(path, out, opt, mode, entries, options, digest.of_bytes(canonical.packb(meaning)))
    for job in jobs(plan):  # every entry's options are checked now, before anything runs
        _check(job)
    return plan


def _portable(source: str | None, base: Path) -> str | None:
    """A source as the plan names it (relative to the plan's folder), so the digest is the same wherever
    the plan is checked out."""
    if source is None:
        return None
    try:
        return Path(source).relative_to(base.resolve()).as_posix()
    except ValueError:
        return source


def _table(value, where: str, keys: set[str]) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a table")
    unknown = set(value) - keys
    if unknown:
        raise UserError(f"{where}: unknown key {sorted(unknown)[0]!r}; known: {', '.join(sorted(keys))}")
    return dict(value)


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{where} must be a non-empty string")
    return value


def _strings(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{where} must be a non-empty list of strings")
    if len(set(value)) != len(value):
        raise UserError(f"{where} lists {next(v for v in value if value.count(v) > 1)!r} twice")
    return tuple(value)


def _model(raw, index: int, base: Path) -> ModelEntry:
    where = f"[[model]] #{index + 1}"
    table = _table(raw, where, MODEL_KEYS)
    source = _text(table.get("source"), f"{where} source")
    where = f"[[model]] #{index + 1} ({source})"
    resolved = _resolve_path(source, base)
    name = table.get("name") or Path(source).name.removesuffix(".gguf")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UserError(f"{where}: name {name!r} must be letters, digits and ._+- (it names output files)")
    weights = table.get("weights")
    sizes = {k: table[k] for k in gen_config.SIZES if k in table}
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise UserError(f"{where}: {key} must be an integer")
    return ModelEntry(
        name=name, source=resolved,
        weights=_resolve_path(_text(weights, f"{where} weights"), base) if weights is not None else None,
        conv_template=_text(table.get("conv_template", "auto"), f"{where} conv_template"),
        model_type=_text(table.get("model_type", "auto"), f"{where} model_type"),
        quantizations=_strings(table.get("quantizations"), f"{where} quantizations"),
        devices=_strings(table.get("devices"), f"{where} devices"), sizes=sizes)


def _resolve_path(text: str, base: Path) -> str:
    """A path relative to the plan's folder; a preset name stays as it is."""
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    return str(candidate.resolve()) if candidate.exists() or "/" in text or text.endswith(".gguf") else text


def library(plan: Plan, entry: ModelEntry, quantization: str, device: str) -> Library:
    """Where one compile's library goes: its format is the plan's (format = ...) or the device's default,
    never what one node happens to have the tools for."""
    resolved = PLAN_DEVICE_ALIASES.get(device, device)
    dev = devices.resolve(resolved, None, None)
    table = plan.device_options.get(device, {})
    suffix = "." + table["format"].lstrip(".") if "format" in table else dev.default_suffix
    if suffix not in dev.suffixes:
        raise UserError(f"[device.{device}] format {table.get('format')!r}: {device} builds "
                        f"{', '.join(s.lstrip('.') for s in dev.suffixes)}")
    fmt = {".dylib": "dylib"}.get(suffix, suffix.lstrip("."))
    overrides = ";".join(f"{k}={table[k]}" for k in COMPILE_SIZES if k in table)
    tag = device.replace(":", "_").replace("-", "_").replace("+", "_")
    return Library(device, resolved, f"libs/{entry.name}-{quantization}-{tag}{suffix}", fmt, overrides,
                   tools_needed(dev, fmt))


def tools_needed(dev, fmt: str) -> tuple[str, ...]:
    """Programs a device's build runs that only some machines have (routing on a cluster)."""
    from llmc.stages import link

    tools = list(devices.for_target(dev.target).TOOLS)
    if fmt == "wasm":
        tools.append("emcc")
    elif fmt in ("so", "dylib") and link.macho(dev.triple):
        tools.append("ld64.lld")
    elif fmt == "so" and not link.is_native(dev.triple):
        tools.append("ld.lld")
    return tuple(tools)


def jobs(plan: Plan) -> list[Job]:
    """One convert and one gen_config per model x quantization (shared by its devices), one compile per
    model x quantization x device; each job lists the jobs it needs (a DAG, in a valid order)."""
    out: list[Job] = []
    for entry in plan.models:
        for q in entry.quantizations:
            common = {"source": entry.source, "quant": q, "model_type": entry.model_type}
            folder = plan.folder(entry.name, q)
            convert = Job(f"convert {entry.name} {q}", "convert", entry.name, q, spec={
                "kind": "convert", **common, "weights": entry.weights, "mode": plan.mode,
                "ref": f"release/{folder}/weights"})
            config = Job(f"gen_config {entry.name} {q}", "config", entry.name, q, spec={
                "kind": "config", **common, "conv_template": entry.conv_template, "sizes": entry.sizes,
                "ref": f"release/{folder}/config"})
            out += [convert, config]
            for device in entry.devices:
                try:
                    lib = library(plan, entry, q, device)
                except (UserError, NotAvailable) as exc:
                    raise UserError(f"[[model]] {entry.name!r} device {device!r}: {exc}") from None
                out.append(Job(f"compile {entry.name} {q} {device}", "compile", entry.name, q, device,
                               (convert.id, config.id), spec={
                                   "kind": "compile", "quant": q, "device": lib.resolved, "fmt": lib.fmt,
                                   "file": Path(lib.path).name, "opt": plan.opt, "overrides": lib.overrides,
                                   "tools": list(lib.tools)}))
    return out


def _check(job: Job) -> None:
    """What building a job's step would refuse, without building: the same checks, now."""
    from llmc.commands import compile as compile_cmd
    from llmc.release import jobs as release_jobs

    where = f"[[model]] {job.model!r}"
    try:
        quant.scheme(job.quant)
        if job.kind == "compile":
            compile_cmd.parse_overrides(job.spec["overrides"])
            _check_opt(job.spec["opt"])
        else:
            release_jobs.step(job.spec)
    except (UserError, NotAvailable) as exc:
        raise UserError(f"{where} ({job.id}): {exc}") from None


def _check_opt(text: str) -> None:
    from llmc.commands.compile import LLMC_FLAGS, MLC_FLAGS, OPT_LEVELS

    if text in OPT_LEVELS:
        return
    for item in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or value.strip() not in ("0", "1") or key.strip() not in MLC_FLAGS + LLMC_FLAGS:
            raise UserError(f"[release] opt {text!r}: use O0..O3 or flag=0|1;... as compile's --opt")
