"""One test per cache-key input: change it and the key changes; reorder and it does not."""
import pytest

from llmc.graph import fingerprints
from llmc.graph.runner import Runner, Source, Step
from toy_stages import make


@pytest.fixture
def runner(store):
    with Runner(store) as r:
        yield r


def test_same_step_same_key(runner):
    stage = make()
    assert runner.key(Step(stage, options={"text": "a"})) == runner.key(Step(stage, options={"text": "a"}))


def test_stage_name_changes_key(runner):
    assert runner.key(Step(make("one"))) != runner.key(Step(make("two")))


def test_stage_version_changes_key(runner):
    a, b = make("toy"), make("toy")
    b.VERSION = "2"
    assert runner.key(Step(a)) != runner.key(Step(b))


def test_option_value_changes_key(runner):
    stage = make()
    assert runner.key(Step(stage, options={"text": "a"})) != runner.key(Step(stage, options={"text": "b"}))


def test_option_order_does_not_change_key(runner):
    stage = make()
    a = Step(stage, options={"text": "a", "files": 2})
    b = Step(stage, options={"files": 2, "text": "a"})
    assert runner.key(a) == runner.key(b)


def test_default_spelled_out_is_same_key(runner):
    stage = make()
    assert runner.key(Step(stage)) == runner.key(Step(stage, options={"text": "hello"}))


def test_unknown_option_is_refused(runner):
    with pytest.raises(ValueError, match="no option"):
        runner.key(Step(make(), options={"txet": "typo"}))


def test_float_option_is_refused(runner):
    with pytest.raises(TypeError, match="float"):
        runner.key(Step(make(), options={"text": 0.1}))


def test_input_content_changes_key(runner, tmp_path):
    stage = make()
    (tmp_path / "src").mkdir()
    f = tmp_path / "src" / "w.bin"
    f.write_bytes(b"one")
    k1 = runner.key(Step(stage, inputs={"src": Source(tmp_path / "src", ("w.bin",))}))
    f.write_bytes(b"two")
    runner._sources.clear()
    k2 = runner.key(Step(stage, inputs={"src": Source(tmp_path / "src", ("w.bin",))}))
    assert k1 != k2


def test_input_location_does_not_change_key(runner, tmp_path):
    stage = make()
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "w.bin").write_bytes(b"same")
    ka = runner.key(Step(stage, inputs={"src": Source(tmp_path / "a", ("w.bin",))}))
    kb = runner.key(Step(stage, inputs={"src": Source(tmp_path / "b", ("w.bin",))}))
    assert ka == kb


def test_upstream_output_changes_key(runner):
    up, down = make("up"), make("down")
    k1 = runner.key(Step(down, inputs={"x": Step(up, options={"text": "a"})}))
    k2 = runner.key(Step(down, inputs={"x": Step(up, options={"text": "b"})}))
    assert k1 != k2


def test_tool_version_changes_key(runner, monkeypatch):
    stage = make(tools=("python", "numpy"))
    k1 = runner.key(Step(stage))
    monkeypatch.setitem(fingerprints.TOOLS, "numpy", lambda: "0.0.0-other")
    assert runner.key(Step(stage)) != k1


def test_unused_tool_does_not_change_key(runner, monkeypatch):
    stage = make(tools=("python",))
    k1 = runner.key(Step(stage))
    monkeypatch.setitem(fingerprints.TOOLS, "numpy", lambda: "0.0.0-other")
    assert runner.key(Step(stage)) == k1


def test_target_changes_key(runner):
    stage = make()
    a = Step(stage, target={"kind": "llvm", "mcpu": "znver4"})
    b = Step(stage, target={"kind": "llvm", "mcpu": "generic"})
    assert runner.key(a) != runner.key(b)


def test_target_key_order_does_not_matter(runner):
    stage = make()
    a = Step(stage, target={"kind": "llvm", "mcpu": "znver4"})
    b = Step(stage, target={"mcpu": "znver4", "kind": "llvm"})
    assert runner.key(a) == runner.key(b)
