"""CONFIG and --source as the seed guide takes them, resolved to files the pipeline can key."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmc.errors import UserError
from llmc.families import PRESETS
from llmc.graph.runner import Source
from llmc.sources import FORMATS, detect_format, weight_files


@dataclass(frozen=True)
class ModelInput:
    config_dir: Path | None = None   # folder holding config_file
    config_file: str = "config.json"
    gguf: Path | None = None
    preset: str = ""

    def config_source(self, extra: tuple[str, ...] = ()) -> Source | None:
        """The config folder's files a stage reads (config.json plus extra names that exist)."""
        if self.config_dir is None or not (self.config_dir / self.config_file).exists():
            return None
        names = [self.config_file] + [n for n in extra if (self.config_dir / n).is_file()]
        return Source(self.config_dir, tuple(dict.fromkeys(names)))


def resolve_config(config: str) -> ModelInput:
    path = Path(config).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelInput(config_dir=path)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelInput(gguf=ggufs[0])
        raise UserError(f"{path} has no config.json" + (" and several .gguf files" if ggufs else ""))
    if path.is_file():
        if path.suffix == ".gguf":
            return ModelInput(gguf=path)
        if path.suffix == ".json":
            return ModelInput(config_dir=path.parent, config_file=path.name)
        raise UserError(f"{path} is neither a config.json nor a .gguf file")
    if config in PRESETS:
        return ModelInput(preset=config)
    raise UserError(f"CONFIG {config!r} is not a model folder, a config.json, a .gguf file or a preset "
                    f"(presets: {', '.join(sorted(PRESETS))})")


def resolve_source(mi: ModelInput, source: str | None, source_format: str,
                   quantization_kind: str) -> tuple[Source, str]:
    """(weights Source, format) from --source/--source-format, defaulting to CONFIG's own files."""
    if source_format != "auto" and source_format not in FORMATS:
        raise UserError(f"unknown source format {source_format!r}; known: auto, {', '.join(FORMATS)}")
    if source is not None:
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"--source {path} does not exist")
    elif mi.gguf is not None:
        path = mi.gguf
    elif mi.config_dir is not None:
        path = mi.config_dir
    else:
        raise UserError(f"preset {mi.preset!r} has no weights: pass them with --source")
    if path.is_file():
        fmt = "gguf" if path.suffix == ".gguf" else None
        if fmt is None and source_format == "auto":
            raise UserError(f"--source {path}: pass a folder, or a .gguf file")
        root, files = path.parent, [path.name]
        fmt = source_format if source_format != "auto" else fmt
        return Source(root, tuple(files)), fmt
    fmt = source_format if source_format != "auto" else detect_format(path, _listing(path), quantization_kind)
    return Source(path, tuple(weight_files(path, fmt))), fmt


def _listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_file())
