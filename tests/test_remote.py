"""The team cache: a real S3 server (rclone serve s3) shared by two stores, and a shared folder."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from llmc.commands.compile import compile_model
from llmc.commands.gen_config import generate_config
from llmc.commands.convert_weight import convert_weight
from llmc.store import Store
from llmc.store.remote import open_remote
from llmc.store.verify import verify

KEY, SECRET, BUCKET = "llmc-test-key", "llmc-test-secret", "team-cache"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self, root):
        self.root, self.port = root, free_port()
        (root / BUCKET).mkdir(parents=True)
        self.proc = None
        self.start()

    def start(self):
        rclone = shutil.which("rclone") or os.path.join(os.path.dirname(sys.executable), "rclone")
        self.proc = subprocess.Popen([rclone, "serve", "s3", "--auth-key", f"{KEY},{SECRET}", "--addr",
                                      f"127.0.0.1:{self.port}", str(self.root)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("rclone serve s3 did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def objects(self, prefix=""):
        base = self.root / BUCKET / "llmc" / prefix
        return sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []


@pytest.fixture
def s3(tmp_path, monkeypatch):
    server = S3Server(tmp_path / "s3-data")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.port}")
    yield server
    server.stop()


URL = f"s3://{BUCKET}/llmc"


def store_with(root, url=URL, read_only=False):
    return Store(root, remote=open_remote(url, read_only))


def full_build(model_dir, out, store):
    """The seed workflow: convert + gen_config + compile; per-command run/cached/remote counts."""
    counts = [convert_weight(str(model_dir), "q4f16_1", out, store).counts,
              generate_config(str(model_dir), "q4f16_1", "chatml", out, store).counts,
              compile_model(str(out), out / "lib.so", store).counts]
    return {k: sum(c[k] for c in counts) for k in counts[0]}


def outputs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def small_model(models_dir):
    from tiny_models import make_llama

    return make_llama(models_dir / "remote-llama", layers=1)


def test_a_second_store_rebuilds_nothing(s3, small_model, tmp_path):
    a = full_build(small_model, tmp_path / "a-MLC", store_with(tmp_path / "store-a"))
    assert a == {"run": 7, "cached": 0, "remote": 0}
    assert s3.objects("actions") and s3.objects("blobs")
    b = full_build(small_model, tmp_path / "b-MLC", store_with(tmp_path / "store-b"))
    # Every stored stage comes from the remote; quantize (never stored) counts as cached: it did not run.
    assert b == {"run": 0, "cached": 1, "remote": 6}
    assert outputs(tmp_path / "a-MLC") == outputs(tmp_path / "b-MLC")
    assert verify(Store(tmp_path / "store-b")).ok


def test_summary_counts_remote_hits(s3, small_model, tmp_path, capsys):
    full_build(small_model, tmp_path / "a-MLC", store_with(tmp_path / "store-a"))
    r = compile_model(str(tmp_path / "a-MLC"), tmp_path / "again.so", store_with(tmp_path / "store-c"))
    assert r.summary.startswith("stages: 0 run, 3 cached (3 remote)")


def test_a_corrupt_remote_blob_is_rejected_and_rebuilt(s3, small_model, tmp_path, capsys):
    full_build(small_model, tmp_path / "a-MLC", store_with(tmp_path / "store-a"))
    blob = max(s3.objects("blobs"), key=lambda p: p.stat().st_size)  # the weights shard
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    b = full_build(small_model, tmp_path / "b-MLC", store_with(tmp_path / "store-b"))
    err = capsys.readouterr().err
    assert f"remote blob xxh128:{blob.name.split('_')[0]}:{len(data)}" in err and "is corrupt" in err
    assert b["run"] >= 1
    assert outputs(tmp_path / "a-MLC") == outputs(tmp_path / "b-MLC")
    assert verify(Store(tmp_path / "store-b")).ok
    # The rebuild pushed the good bytes back over the corrupt object.
    c = full_build(small_model, tmp_path / "c-MLC", store_with(tmp_path / "store-c"))
    assert c["run"] == 0


def test_server_dying_mid_transfer_falls_back_to_building(s3, small_model, tmp_path, capsys):
    full_build(small_model, tmp_path / "a-MLC", store_with(tmp_path / "store-a"))
    store = store_with(tmp_path / "store-b")

    class KillOnFirstObject:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def advance(self, amount=1):
            s3.stop()

    store.remote.progress = lambda description, total: KillOnFirstObject()
    t0 = time.time()
    b = full_build(small_model, tmp_path / "b-MLC", store)
    assert time.time() - t0 < 120
    assert b["run"] >= 1 and "continuing without it" in capsys.readouterr().err
    assert outputs(tmp_path / "a-MLC") == outputs(tmp_path / "b-MLC")
    assert verify(Store(tmp_path / "store-b")).ok


def test_a_dead_server_fails_fast(small_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    t0 = time.time()
    r = convert_weight(str(small_model), "q0f32", tmp_path / "out", store_with(tmp_path / "store"))
    assert time.time() - t0 < 60 and r.counts["run"] == 3
    assert capsys.readouterr().err.count("continuing without it") == 1


def test_read_only_remote_is_never_written(s3, small_model, tmp_path):
    convert_weight(str(small_model), "q0f32", tmp_path / "out", store_with(tmp_path / "ro", read_only=True))
    assert s3.objects() == []


def test_shared_folder_remote_and_push_pull_cli(small_model, tmp_path):
    shared = tmp_path / "mount"
    offline = Store(tmp_path / "offline")
    convert_weight(str(small_model), "q0f32", tmp_path / "w-MLC", offline)
    env = {**os.environ}
    run = lambda *a: subprocess.run([sys.executable, "-m", "llmc", *a], capture_output=True, text=True,
                                    env=env)
    r = run("store", "push", "--store", str(offline.root), "--remote", f"file://{shared}")
    assert r.returncode == 0, r.stderr
    assert "pushed 2 action entries and 1 refs" in r.stdout
    r = run("store", "pull", "convert_weight/w-MLC", "--store", str(tmp_path / "fresh"), "--remote", f"file://{shared}")
    assert r.returncode == 0, r.stderr
    fresh = Store(tmp_path / "fresh")
    assert fresh.get_ref("convert_weight/w-MLC") == offline.get_ref("convert_weight/w-MLC")
    assert verify(fresh).ok and fresh.has_artifact(fresh.get_ref("convert_weight/w-MLC"))
    # And the same conversion in a third store is all remote hits.
    r = run("convert_weight", str(small_model), "--quantization", "q0f32", "-o", str(tmp_path / "x-MLC"), "--store",
            str(tmp_path / "third"), "--remote", f"file://{shared}")
    assert r.returncode == 0 and "(2 remote)" in r.stderr


def test_remote_settings_precedence(tmp_path, monkeypatch):
    from llmc.store.config import remote_settings

    (tmp_path / "config.toml").write_text('[remote]\nurl = "file:///from-config"\nread_only = true\n')
    monkeypatch.delenv("LLMC_REMOTE", raising=False)
    assert remote_settings(tmp_path) == ("file:///from-config", True)
    monkeypatch.setenv("LLMC_REMOTE", "file:///from-env")
    assert remote_settings(tmp_path)[0] == "file:///from-env"
    assert remote_settings(tmp_path, "file:///from-flag")[0] == "file:///from-flag"


def test_bad_remote_url_is_one_line(tmp_path, small_model):
    r = subprocess.run([sys.executable, "-m", "llmc", "convert_weight", str(small_model), "--quantization",
                        "q0f32", "-o", str(tmp_path / "o"), "--store", str(tmp_path / "s"), "--remote", "ftp://x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "s3://bucket/prefix" in r.stderr
