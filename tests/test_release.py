"""Release builds: a plan of 2 tiny models x 2 quantizations x {cpu, iphone}, built by the local executor
and by a real 2-node Ray cluster sharing an S3 team cache (rclone serve s3), published with release.json
and verified; a Ray worker SIGKILLed mid-compile; plans with mistakes refused before any job runs."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from llmc.cli import run as cli
from llmc.commands.release import build_release, verify_release
from llmc.release import plan as release_plan
from llmc.store import Store
from llmc.store.remote import open_remote

PLAN = """
[release]
output = "dist/release"
opt = "O2"

[[model]]
source = "models/tiny-llama"
conv_template = "chatml"
quantizations = ["q4f16_1", "q0f32"]
devices = ["cpu", "iphone"]

[[model]]
source = "models/tiny-neox"
name = "tiny-neox"
conv_template = "chatml"
quantizations = ["q4f16_1", "q0f32"]
devices = ["cpu", "iphone"]

[device.iphone]
context_window_size = 768
"""


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory):
    from tiny_models import make_llama, make_neox

    root = tmp_path_factory.mktemp("release")
    make_llama(root / "models" / "tiny-llama", layers=1)
    make_neox(root / "models" / "tiny-neox", layers=1)
    (root / "plan.toml").write_text(PLAN)
    return root


def _plan(root: Path, text: str) -> Path:
    path = root / "bad.toml"
    path.write_text(text)
    return path


BAD_PLANS = {
    "quantization": (PLAN.replace('["q4f16_1", "q0f32"]', '["q4f16_1", "q9f16_1"]', 1), "'tiny-llama'", "q9f16_1"),
    "device": (PLAN.replace('["cpu", "iphone"]', '["cpu", "iphon"]', 1), "'tiny-llama'", "iphon"),
    "source": (PLAN.replace("models/tiny-neox", "models/missing"), "'tiny-neox'", "missing"),
    "model": (PLAN.replace('source = "models/tiny-neox"', 'source = "smollm9_135m"'), "'tiny-neox'",
              "smollm9_135m"),
    "model key": (PLAN.replace('conv_template = "chatml"', 'conv_tempalte = "chatml"', 1), "[[model]] #1",
                  "conv_tempalte"),
    "device table": (PLAN.replace("[device.iphone]", "[device.android]"), "[device.android]", "android"),
    "toml": (PLAN + "\n[[model]\n", "bad.toml", "TOML"),
}


@pytest.mark.parametrize("mistake", sorted(BAD_PLANS))
def test_a_bad_plan_is_one_line_naming_the_entry_before_any_job(plan_dir, mistake, capsys, tmp_path):
    text, entry, detail = BAD_PLANS[mistake]
    store = tmp_path / "store"
    code = cli(["--store", str(store), "release", "build", str(_plan(plan_dir, text)), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert entry in err and detail in err, err
    assert not (tmp_path / "out").exists()
    assert not (store / "actions").exists() or not any((store / "actions").rglob("*"))


def test_the_plan_expands_into_a_dag_with_one_convert_per_model_and_quantization(plan_dir):
    plan = release_plan.load(plan_dir / "plan.toml")
    jobs = release_plan.jobs(plan)
    kinds = [j.kind for j in jobs]
    assert kinds.count("convert") == 4 and kinds.count("config") == 4 and kinds.count("compile") == 8
    ids = {j.id for j in jobs}
    for job in jobs:
        assert set(job.deps) <= ids
        if job.kind == "compile":
            assert job.deps == (f"convert {job.model} {job.quant}", f"gen_config {job.model} {job.quant}")
    iphone = next(j for j in jobs if j.device == "iphone")
    assert iphone.spec["overrides"] == "context_window_size=768" and iphone.spec["file"].endswith("-iphone.tar")
    cpu = next(j for j in jobs if j.device == "cpu")
    assert cpu.spec["device"] == "cpu:generic" and cpu.spec["file"].endswith("-cpu.so")
    assert plan.output == str(plan_dir / "dist" / "release")
    # the digest is the plan's meaning: not where it is published, not where it is checked out
    assert release_plan.load(plan_dir / "plan.toml", "s3://b/p").digest == plan.digest


def _built_runs(result) -> dict[str, int]:
    return {o.job.id: o.result["counts"]["run"] for o in result.outcomes.values()}


@pytest.fixture(scope="module")
def local_release(plan_dir, tmp_path_factory):
    """The plan built by the local executor (2 worker processes) in an empty store."""
    store = Store(tmp_path_factory.mktemp("local-store"))
    result = build_release(str(plan_dir / "plan.toml"), store, workers=2)
    return store, result


@pytest.mark.tvm
def test_local_executor_builds_every_job_once_publishes_and_verifies(plan_dir, local_release, capsys):
    store, result = local_release
    assert result.failed == [], [o.error for o in result.failed]
    assert result.counts() == {"jobs": 16, "built": 16, "reused": 0, "failed": 0}
    out = plan_dir / "dist" / "release"
    index = json.loads((out / "release.json").read_bytes())
    assert (out / "release.json").read_bytes() == result.index
    paths = {f["path"] for f in index["files"]}
    assert {f"libs/{m}-{q}-{d}" for m in ("tiny-llama", "tiny-neox") for q in ("q4f16_1", "q0f32")
            for d in ("cpu.so", "iphone.tar")} <= paths
    assert "tiny-neox-q0f32-MLC/mlc-chat-config.json" in paths and "tiny-llama-q4f16_1-MLC/params_shard_0.bin" in paths
    assert not any(p.endswith(("quantization-report.json", "warnings.txt")) for p in paths)
    config = json.loads((out / "tiny-llama-q4f16_1-MLC" / "mlc-chat-config.json").read_text())
    assert config["conv_template"]["name"] == "chatml"
    assert len(index["artifacts"]) == 16 and index["plan"] == release_plan.load(plan_dir / "plan.toml").digest
    assert verify_release(str(out)) == (len(paths), [])

    again = build_release(str(plan_dir / "plan.toml"), store, workers=2)
    assert again.counts() == {"jobs": 16, "built": 0, "reused": 16, "failed": 0}
    assert again.index == result.index

    victim = out / "libs" / "tiny-neox-q0f32-cpu.so"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    (out / "tiny-llama-q0f32-MLC" / "tokenizer.json").unlink()
    assert cli(["release", "verify", str(out / "release.json")]) == 1
    printed = capsys.readouterr().out
    assert "libs/tiny-neox-q0f32-cpu.so: xxh128, sha256 do not match the index" in printed
    assert "tiny-llama-q0f32-MLC/tokenizer.json: missing" in printed
    assert "checked 32 files: 2 problem(s)" in printed


class _KillFirstCompile(threading.Thread):
    """SIGKILLs the first Ray worker seen running a compile, a moment after it starts (mid-lower)."""

    def __init__(self, delay: float = 1.5):
        super().__init__(daemon=True)
        self.delay, self.killed, self.stop = delay, None, threading.Event()

    def run(self):
        deadline = time.time() + 600
        while not self.stop.is_set() and time.time() < deadline:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                except OSError:
                    continue
                if title.startswith("ray::compile "):
                    time.sleep(self.delay)
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                        self.killed = title
                    except ProcessLookupError:
                        continue
                    return
            time.sleep(0.1)


def _shard_builds(root: Path) -> int:
    """Action entries of the shard stage (the end of a convert) that this store built itself."""
    from llmc.store import canonical

    n = 0
    for path in (root / "actions").rglob("*") if (root / "actions").exists() else []:
        if path.is_file():
            provenance = canonical.unpackb(path.read_bytes()).get("provenance", {})
            n += provenance.get("stage") == "shard" and "fetched_from" not in provenance
    return n


@pytest.mark.tvm
def test_ray_cluster_with_s3_builds_the_same_release_survives_a_killed_worker(plan_dir, local_release, tmp_path,
                                                                              monkeypatch):
    # Ray's switch for "no multi-machine cluster", read when ray is imported: every node and the driver
    # then use 127.0.0.1.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    pytest.importorskip("ray", reason="the ray extra: pip install 'llmc[ray]'")
    import ray
    from ray.cluster_utils import Cluster
    from test_remote import BUCKET, KEY, SECRET, S3Server

    server = S3Server(tmp_path / "s3-data")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.port}")
    nodes = {name: tmp_path / f"node-{name}" for name in ("head", "worker")}
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "env_vars": {"LLMC_HOME": str(nodes["head"])}})
    try:
        cluster.add_node(num_cpus=1, env_vars={"LLMC_HOME": str(nodes["worker"])},
                         resources={"llmc_tool_ld64_lld": 10})
        driver = Store(tmp_path / "driver", remote=open_remote(f"s3://{BUCKET}/cache"))
        output = f"s3://{BUCKET}/release"
        killer = _KillFirstCompile()
        killer.start()
        first = build_release(str(plan_dir / "plan.toml"), driver, output, ray=True, ray_address=cluster.address)
        killer.stop.set()
        assert killer.killed, "no compile worker was seen to kill"
        assert first.failed == [], [o.error for o in first.failed]
        assert first.counts()["built"] == 16
        # byte for byte the index the local executor wrote from its own empty store
        assert first.index == local_release[1].index
        # each convert ran once across the cluster: 4 shard builds over both nodes' stores
        assert sum(_shard_builds(root) for root in nodes.values()) == 4
        assert _shard_builds(nodes["head"]) > 0 or _shard_builds(nodes["worker"]) > 0
        assert verify_release(output) == (32, [])

        second = build_release(str(plan_dir / "plan.toml"), Store(tmp_path / "driver2", remote=open_remote(
            f"s3://{BUCKET}/cache")), output, ray=True, ray_address=cluster.address)
        assert second.counts() == {"jobs": 16, "built": 0, "reused": 16, "failed": 0}
        assert second.index == first.index

        routed = plan_dir / "cuda.toml"
        routed.write_text(PLAN.replace('devices = ["cpu", "iphone"]', 'devices = ["cuda"]').replace(
            "[device.iphone]\ncontext_window_size = 768\n", ""))
        third = build_release(str(routed), driver, f"s3://{BUCKET}/cuda", ray=True, ray_address=cluster.address)
        failed = {o.job.id: o.error for o in third.failed}
        assert set(failed) == {f"compile {m} {q} cuda" for m in ("tiny-llama", "tiny-neox") for q in ("q4f16_1", "q0f32")}
        assert all("needs nvcc, which no Ray node offers" in e for e in failed.values())
        assert third.counts()["reused"] == 8 and third.index is None  # converts and configs: nothing to rebuild
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        server.stop()
