"""A stage's compiler work in a child process: crashes and errors there come back as one-line errors."""
from pathlib import Path

import pytest

from llmc.errors import BuildFailed, NotAvailable
from llmc.graph import isolated


def test_a_result_of_the_child_is_its_side_effect(tmp_path):
    target = tmp_path / "out.json"
    isolated.call("shutil:copyfile", {"src": __file__, "dst": str(target)}, "copy")
    assert target.read_text() == open(__file__).read()


def test_a_native_crash_names_the_work_and_the_signal():
    with pytest.raises(BuildFailed) as err:
        isolated.call("os:abort", {}, "lower for cuda (sm_80) of llama q4f16_1")
    message = str(err.value)
    assert message.startswith("lower for cuda (sm_80) of llama q4f16_1 crashed inside TVM (SIGABRT, signal 6)")
    assert "\n" not in message and "nothing was stored" in message


def test_an_exception_in_the_child_keeps_its_type_message_and_traceback():
    with pytest.raises(BuildFailed, match=r"^lower for x failed: JSONDecodeError: Expecting") as err:
        isolated.call("json:loads", {"s": "{"}, "lower for x")
    assert isinstance(err.value.__cause__, isolated.ChildTraceback)
    assert "json/decoder.py" in str(err.value.__cause__)


def test_a_user_error_in_the_child_stays_a_user_error():
    # NotAvailable raised by llmc code inside the child: the same class here (exit code 2 in the CLI)
    with pytest.raises(NotAvailable, match="Vulkan libraries need a TVM built with USE_VULKAN=ON"):
        isolated.call("llmc.devices.vulkan:resolve", {"name": "vulkan", "variant": "", "host": None,
                                                       "cache_dir": None}, "x")


@pytest.mark.parametrize("asked, crashes", [("json:loads", True), ("json:loads:\"[1]\"", True),
                                            ("json:loads:other", False), ("json:dumps", False)])
def test_crash_injection_matches_function_and_argument_text(monkeypatch, asked, crashes):
    monkeypatch.setenv(isolated.CRASH_ENV, asked)
    if crashes:
        with pytest.raises(BuildFailed, match=r"SIGSEGV, signal 11"):
            isolated.call("json:loads", {"s": "[1]"}, "work")
    else:
        isolated.call("json:loads", {"s": "[1]"}, "work")


def test_a_prestarted_child_runs_the_next_call_of_its_module(tmp_path):
    isolated.prestart("shutil", "json")
    child = isolated._prestarted["shutil"]
    target = tmp_path / "out.json"
    isolated.call("shutil:copyfile", {"src": __file__, "dst": str(target)}, "copy")
    assert target.read_text() == Path(__file__).read_text()
    assert child.proc.returncode == 0 and "shutil" not in isolated._prestarted


def test_an_unused_prestarted_child_is_ended():
    isolated.prestart("json")
    child = isolated._prestarted["json"]
    isolated.discard()
    assert child.proc.poll() is not None and not isolated._prestarted
    assert not Path(child.folder.name).exists()


def test_a_prestarted_child_reports_a_crash_as_a_fresh_one_does(monkeypatch):
    monkeypatch.setenv(isolated.CRASH_ENV, "json:loads")
    isolated.prestart("json")
    with pytest.raises(BuildFailed, match=r"SIGSEGV, signal 11"):
        isolated.call("json:loads", {"s": "[1]"}, "work")


def test_a_child_prestarted_before_the_environment_changed_is_not_used(monkeypatch):
    isolated.prestart("json")
    stale = isolated._prestarted["json"]
    monkeypatch.setenv(isolated.CRASH_ENV, "json:loads")  # a fresh child crashes; the stale one would not
    with pytest.raises(BuildFailed, match=r"SIGSEGV, signal 11"):
        isolated.call("json:loads", {"s": "[1]"}, "work")
    assert stale.proc.returncode is not None and not Path(stale.folder.name).exists()
