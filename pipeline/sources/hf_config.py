"""Where a model's Hugging Face-style config comes from: config.json, a GGUF's metadata, or a preset."""
from __future__ import annotations

import json
from pathlib import Path

from llmc.errors import UserError
from llmc.families import PRESETS


def read_json(path: Path, what: str = "") -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON{what}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return data


def load(config_dir: Path | None, gguf_path: Path | None, preset: str,
         config_file: str = "config.json") -> dict:
    if preset:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
        return dict(PRESETS[preset])
    if config_dir is not None and (config_dir / config_file).exists():
        return read_json(config_dir / config_file)
    if gguf_path is not None:
        from llmc.sources.gguf_file import _open, hf_config

        return hf_config(_open(gguf_path), gguf_path)[1]
    raise UserError("no config.json, GGUF file or preset to read the model's config from")
