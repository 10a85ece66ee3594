#!/usr/bin/env python3
"""Decode speed as a share of the memory-bandwidth ceiling, with the probe paired to the decode in time.

On a shared host the read bandwidth drifts by a third within minutes, so a probe taken once per run (as
bench_scale's) can put one model's decode at 55% of its "ceiling" and the next one's above 100%. Here
each round reads the probe (best of two reads), decodes a few steps, and reads the probe again; the
round's share is the weight bytes one token reads over its median step time, divided by the better of
the two probe readings. The median share over the rounds is the figure; the spread is printed too.

    python scripts/bench_ceiling.py FOLDER [--lib lib-O2.so] [--against OTHER.so] [--rounds 12] [--steps 4]
    python scripts/bench_ceiling.py --model SmolLM2-1.7B [--opt O2] [--work DIR]

FOLDER holds a converted model and its library. --against decodes a second library of the same model in
the same rounds, each round's order alternating, and prints the two speeds' paired ratio. --model writes
random weights at one of bench_scale's shapes, converts (MLC's rule), compiles and measures in a temporary
folder deleted at the end.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import THREADS, bandwidth_probe, llmc_weight_bytes, median  # noqa: E402


def build(model: str, opt: str, work: Path) -> Path:
    """A converted model folder with lib-{opt}.so for bench_scale's shape `model`."""
    import bench_scale

    cfg, _ = bench_scale.models()[model]
    hf, folder, store = work / "hf", work / "model", work / "store"
    bench_scale.write_hf(cfg, hf)
    for args in (["convert_weight", str(hf), "--quantization", "q4f16_1", "--quantization-mode", "mlc"],
                 ["gen_config", str(hf), "--quantization", "q4f16_1", "--conv-template", "chatml",
                  "--context-window-size", "2048", "--prefill-chunk-size", "512"]):
        subprocess.run(bench_scale.llmc(*args, "-o", str(folder), "--store", str(store)), check=True,
                       capture_output=True)
    subprocess.run(bench_scale.llmc("compile", str(folder), "--opt", opt, "-o", str(folder / f"lib-{opt}.so"),
                                    "--store", str(store)), check=True, capture_output=True)
    return folder


def paired_rounds(folder: Path, lib_names: list[str], rounds: int, steps: int) -> dict[str, list[tuple[float, float]]]:
    """{library: [(decode tok/s, probe bytes/s) per round]}: each round decodes with every library (the
    order alternating between rounds) between one pair of probe readings."""
    from llmc import devices
    from llmc.runtime.library import ModelLibrary

    probe = bandwidth_probe(devices.resolve("cpu", None, None).target, megabytes=512)
    sessions = []
    for name in lib_names:
        lib = ModelLibrary(folder / name, folder)
        kv = lib.create_kv_cache(1, 2048)
        lib.add_sequence(kv, 0)
        lib.prefill(kv, 0, list(range(100, 132)))
        for _ in range(2):  # warm-up: first touches of the weights and the workspace
            lib.decode(kv, [0], [100])
        sessions.append((name, lib, kv))
    out = {name: [] for name in lib_names}
    for i in range(rounds):
        before = max(probe(), probe())
        rates = {}
        for name, lib, kv in sessions if i % 2 == 0 else sessions[::-1]:
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                lib.decode(kv, [0], [100])
                times.append(time.perf_counter() - t0)
            rates[name] = 1 / median(times)
        after = max(probe(), probe())
        for name in lib_names:
            out[name].append((rates[name], max(before, after)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?")
    ap.add_argument("--lib", default=None, help="the library in FOLDER (default lib-O2.so)")
    ap.add_argument("--model", default=None, help="build this bench_scale shape instead of reading FOLDER")
    ap.add_argument("--opt", default="O2")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--against", default=None,
                    help="a second library in FOLDER, decoded in the same rounds: prints the paired speed ratio")
    args = ap.parse_args()
    if (args.folder is None) == (args.model is None):
        ap.error("give exactly one of FOLDER and --model")
    if args.against and args.model:
        ap.error("--against needs FOLDER (a model with both libraries in it)")
    with tempfile.TemporaryDirectory(prefix="llmc-ceiling-", dir=args.work) as tmp:
        folder = args.folder or build(args.model, args.opt, Path(tmp))
        lib_names = [args.lib or f"lib-{args.opt}.so", *([args.against] if args.against else [])]
        nbytes = llmc_weight_bytes(folder)
        by_lib = paired_rounds(folder, lib_names, args.rounds, args.steps)
    for lib_name, rounds in by_lib.items():
        report(args.model or folder.name, lib_name, nbytes, rounds, args.steps)
    if args.against:
        base, other = (by_lib[name] for name in lib_names)
        ratios = sorted(b[0] / a[0] for a, b in zip(base, other))
        print(f"{lib_names[1]} / {lib_names[0]} decode, paired by round: median {median(ratios):.3f}x "
              f"(rounds {ratios[0]:.3f}-{ratios[-1]:.3f}x)")
    return 0


def report(name: str, lib_name: str, nbytes: int, rounds: list[tuple[float, float]], steps: int) -> None:
    shares = sorted(tok_s * nbytes / bw for tok_s, bw in rounds)
    print(f"{name} {lib_name}, {THREADS} threads, {nbytes / 1e9:.3f} GB read per token, {len(rounds)} rounds of "
          f"{steps} steps: decode {median([t for t, _ in rounds]):.2f} tok/s (rounds "
          f"{min(t for t, _ in rounds):.2f}-{max(t for t, _ in rounds):.2f}), probe "
          f"{median([b for _, b in rounds]) / 1e9:.1f} GB/s ({min(b for _, b in rounds) / 1e9:.1f}-"
          f"{max(b for _, b in rounds) / 1e9:.1f}); share of the paired ceiling: median {100 * median(shares):.0f}% "
          f"(rounds {100 * shares[0]:.0f}-{100 * shares[-1]:.0f}%)")


if __name__ == "__main__":
    sys.exit(main())
