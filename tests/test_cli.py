"""The CLI's contract: names, versions, and one-line errors with exit code 2."""
import subprocess
import sys

import pytest


def llmc(*args, env=None):
    return subprocess.run([sys.executable, "-m", "llmc", *args], capture_output=True, text=True, env=env)


def test_help_lists_the_seed_guide_commands():
    r = llmc("--help")
    assert r.returncode == 0
    for name in ("convert_weight", "gen_config", "compile", "chat", "store"):
        assert name in r.stdout
    assert "convert-weight" not in r.stdout  # dashed aliases work but are not listed twice


def test_version_names_tvm_path_version_and_commit():
    r = llmc("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("llmc ")
    assert "tvm 0.27.0" in r.stdout and "site-packages/tvm" in r.stdout and "commit g" in r.stdout


@pytest.mark.parametrize("args", [
    ["no_such_command"],
    ["store", "ls", "--no-such-option"],
    ["store", "gc", "--grace", "soon"],
    ["store", "show", "no/such/ref"],
    ["store", "explain", "a", "b"],
])
def test_bad_input_is_one_line_exit_2(args, tmp_path):
    r = llmc(*args, "--store", str(tmp_path / "s")) if args[0] == "store" else llmc(*args)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr and "stages:" not in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    r = llmc("store", "gc", "--grace", "soon", "--store", str(tmp_path / "s"), "--debug")
    assert r.returncode == 2
    assert "Traceback" in r.stderr


def test_store_option_before_the_command(tmp_path):
    r = llmc("--store", str(tmp_path / "s"), "store", "ls")
    assert r.returncode == 0 and str(tmp_path / "s") in r.stdout


def test_llmc_home_sets_the_store(tmp_path):
    import os

    r = llmc("store", "ls", env={**os.environ, "LLMC_HOME": str(tmp_path / "home")})
    assert r.returncode == 0 and str(tmp_path / "home") in r.stdout
