#!/usr/bin/env python3
"""Wall time of a release plan (2 tiny models x 2 quantizations x {cpu, iphone}: 16 jobs) built from an
empty store by the local executor with 1 and 2 workers and by a 2-node local Ray cluster (1 CPU per
node) sharing an S3 team cache (rclone serve s3); then the jobs built vs reused by a second run of each.

    .venv/bin/python scripts/bench_release.py
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from test_release import PLAN
    from test_remote import BUCKET, KEY, SECRET, S3Server
    from tiny_models import make_llama, make_neox

    from llmc.commands.release import build_release
    from llmc.store import Store
    from llmc.store.remote import open_remote

    os.environ.setdefault("TVM_NUM_THREADS", "1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_llama(tmp / "models" / "tiny-llama", layers=1)
        make_neox(tmp / "models" / "tiny-neox", layers=1)
        plan = tmp / "plan.toml"
        plan.write_text(PLAN)

        def timed(name, store_root, **kwargs):
            runs = []
            for attempt in ("first", "second"):
                t0 = time.perf_counter()
                result = build_release(str(plan), make_store(store_root), str(tmp / f"out-{name}"), **kwargs)
                runs.append((time.perf_counter() - t0, result.counts()))
                assert not result.failed, [o.error for o in result.failed]
            rows.append((name, runs))

        make_store = Store
        timed("local, 1 worker", tmp / "store-1", workers=1)
        timed("local, 2 workers", tmp / "store-2", workers=2)

        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # read at import: nodes on 127.0.0.1
        from ray.cluster_utils import Cluster

        server = S3Server(tmp / "s3")
        os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                          AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.port}")
        t0 = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "env_vars": {"LLMC_HOME": str(tmp / "node-a")}})
        cluster.add_node(num_cpus=1, env_vars={"LLMC_HOME": str(tmp / "node-b")})
        startup = time.perf_counter() - t0
        try:
            make_store = lambda root: Store(root, remote=open_remote(f"s3://{BUCKET}/cache"))  # noqa: E731
            timed("Ray, 2 nodes x 1 CPU, S3 cache", tmp / "store-ray", ray=True, ray_address=cluster.address)
        finally:
            cluster.shutdown()
            server.stop()
    print(f"release plan: 2 tiny models x 2 quantizations x {{cpu, iphone}} = 16 jobs, "
          f"TVM_NUM_THREADS={os.environ['TVM_NUM_THREADS']}, {os.cpu_count()} cores")
    print(f"{'executor':<34} {'first run s':>11} {'second run s':>12}  second run jobs")
    for name, ((t1, _), (t2, c2)) in rows:
        print(f"{name:<34} {t1:>11.1f} {t2:>12.1f}  {c2['built']} built, {c2['reused']} reused")
    print(f"(Ray cluster start, not in the times above: {startup:.1f} s)")


if __name__ == "__main__":
    main()
