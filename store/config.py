"""Where the remote tier comes from: --remote, then $LLMC_REMOTE, then $LLMC_HOME/config.toml.

    # $LLMC_HOME/config.toml
    [remote]
    url = "s3://team-cache/llmc"     # or file:///mnt/shared/llmc
    read_only = false
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

TRUE = ("1", "true", "yes", "on")


def remote_settings(root: Path, url: str | None = None, read_only: bool | None = None) -> tuple[str | None, bool]:
    section = {}
    config = Path(root) / "config.toml"
    if config.is_file():
        try:
            section = tomllib.loads(config.read_text()).get("remote", {})
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ValueError(f"{config} is not valid TOML: {exc}") from None
    url = url or os.environ.get("LLMC_REMOTE") or section.get("url") or None
    if not read_only:
        env = os.environ.get("LLMC_REMOTE_READ_ONLY")
        read_only = bool(read_only) or (env.lower() in TRUE if env else bool(section.get("read_only", False)))
    return url, read_only
