"""llama.cpp as the speed peer: built from the source llama-cpp-python's sdist vendors, cached outside the repo.

The build lives in $LLMC_BENCH_CACHE (default ~/.cache/llmc-bench) and is reused while its
llama-bench and llama-quantize exist; quantized GGUFs are made once per source file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

VERSION = "0.3.36"
CACHE = Path(os.environ.get("LLMC_BENCH_CACHE", Path.home() / ".cache" / "llmc-bench"))
TOOLS = ("llama-bench", "llama-quantize")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def source_dir() -> Path:
    src = CACHE / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    if (src / "CMakeLists.txt").exists():
        return src
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"llama_cpp_python-{VERSION}.tar.gz"
    if not archive.exists():
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
              "-d", str(CACHE), f"llama-cpp-python=={VERSION}"])
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return src


def binaries(tools: tuple[str, ...] = TOOLS) -> dict[str, Path]:
    """Paths of llama.cpp tools (llama-bench and llama-quantize; llama-server on request), building what is
    missing (several minutes on 2 cores)."""
    src = source_dir()
    bin_dir = src / "build" / "bin"
    found = {t: bin_dir / t for t in tools}
    if all(p.exists() for p in found.values()):
        return found
    print(f"building llama.cpp {VERSION} (GGML_NATIVE=ON) in {src / 'build'} ...", file=sys.stderr)
    server = "ON" if "llama-server" in tools else "OFF"
    _run(["cmake", "-S", str(src), "-B", str(src / "build"), "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
          "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
          f"-DLLAMA_BUILD_SERVER={server}"], stdout=subprocess.DEVNULL)
    _run(["cmake", "--build", str(src / "build"), "--config", "Release", "-j", str(os.cpu_count() or 2),
          "--target", *tools], stdout=subprocess.DEVNULL)
    return found


def quantized(gguf: Path, kind: str) -> Path:
    """gguf re-quantized to kind (Q4_0, F32, ...) by llama-quantize; cached by source name and size."""
    out = CACHE / "gguf" / f"{gguf.stem}.{gguf.stat().st_size}.{kind}.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".partial")
        _run([str(binaries()["llama-quantize"]), "--allow-requantize", str(gguf), str(tmp), kind],
             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tmp.rename(out)
    return out


def bench(gguf: Path, threads: int, prompts: list[int], generate: int, reps: int) -> dict[str, list[float]]:
    """llama-bench's per-repetition tokens/s: {"pp32": [...], "tg64": [...]}.

    --repack 0: with the default repacking, llama-bench segfaults on Q4 files on some x86 CPUs.
    """
    cmd = [str(binaries()["llama-bench"]), "-m", str(gguf), "-t", str(threads), "-p", ",".join(map(str, prompts)),
           "-n", str(generate), "-r", str(reps), "--repack", "0", "-o", "json"]
    rows = json.loads(_run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout)
    out = {}
    for row in rows:
        name = f"pp{row['n_prompt']}" if row["n_gen"] == 0 else f"tg{row['n_gen']}"
        out[name] = [float(x) for x in row["samples_ts"]]
    return out


def weight_bytes(gguf: Path) -> int:
    """Bytes of weights one decoded token reads: every tensor, less the embedding table when a
    separate output matrix exists (then only one embedding row is read)."""
    from gguf import GGUFReader

    tensors = {t.name: int(t.n_bytes) for t in GGUFReader(gguf).tensors}
    total = sum(tensors.values())
    if "output.weight" in tensors:
        total -= tensors["token_embd.weight"]
    return total
