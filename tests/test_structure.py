"""The package's shape: one llmc namespace, import boundaries between layers, the stage protocol, and a
lower key that follows the compiler's source. None of these tests imports TVM."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"llmc": ROOT / "pipeline", "llmc.store": ROOT / "store", "llmc.runtime": ROOT / "runtime"}


def modules():
    """(module name, path) for every source file of the three folders."""
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("").parts
            if package == "llmc" and rel[0] in ("store", "runtime"):
                continue
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            yield ".".join((package, *parts)), path


def imports(path: Path, module: str) -> set[str]:
    """Absolute names of everything a file imports (relative imports resolved), at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


ALL = list(modules())


def test_only_the_compiler_the_families_tvm_modules_and_the_runtime_import_tvm():
    allowed = [m for m, _ in ALL if under(m, "llmc.compiler", "llmc.runtime") or
               (m.startswith("llmc.families.") and m.endswith(".nn"))]
    offenders = [m for m, path in ALL if m not in allowed and any(under(i, "tvm") for i in imports(path, m))]
    assert offenders == []
    assert "llmc.compiler.lowering" in allowed and "llmc.families.llama.nn" in allowed


def test_the_store_imports_nothing_of_the_pipeline():
    for m, path in ALL:
        if under(m, "llmc.store"):
            outside = [i for i in imports(path, m) if under(i, "llmc") and not under(i, "llmc.store")]
            assert outside == [], m


def test_the_runtime_does_not_import_the_compiler_or_the_stages():
    for m, path in ALL:
        if under(m, "llmc.runtime"):
            assert not [i for i in imports(path, m) if under(i, "llmc.compiler", "llmc.stages")], m


def test_nothing_imports_the_old_top_level_names():
    for m, path in ALL:
        assert not [i for i in imports(path, m) if under(i, "pipeline", "store", "runtime")], m


def test_every_family_is_one_folder_in_the_list():
    from llmc import families

    folders = sorted(p.name for p in (ROOT / "pipeline" / "families").iterdir()
                     if p.is_dir() and (p / "__init__.py").exists())
    assert sorted(f.__name__.rsplit(".", 1)[1] for f in families.FAMILIES) == folders
    for family in families.FAMILIES:
        for part in ("config", "params", "gguf", "presets", "nn", "tiny"):
            assert (ROOT / "pipeline" / "families" / family.__name__.rsplit(".", 1)[1] / f"{part}.py").is_file()
    assert set(families.SUPPORTED) == {"gemma2", "gemma3", "gpt2", "gpt_neox", "llama", "mistral", "mixtral", "phi3",
                                         "qwen2", "qwen2_moe", "qwen3", "qwen3_moe"}
    assert families.ALIASES["gptneox"] == "gpt_neox" and "smollm2_135m" in families.PRESETS


def test_every_scheme_kind_and_device_is_one_module():
    from llmc import devices, quant

    assert sorted(quant.KINDS) == ["awq", "group", "none"]
    assert {s.kind for s in quant.SCHEMES.values()} == set(quant.KINDS)
    names = [n for d in devices.DEVICES for n in d.NAMES]
    assert len(names) == len(set(names))
    assert devices.module_for("metal:x86-64") is devices.module_for("iphone")
    for device in devices.DEVICES:
        if device is not devices.vulkan:  # the refusal builds nothing
            assert device.SCHEDULES in ("cpu", "gpu") and isinstance(device.TOOLS, tuple)
            assert callable(device.post_lower) and (device.ACTIVATION_DTYPE in (None, "float32"))


def test_stages_follow_the_protocol_and_a_misspelt_one_fails(tmp_path):
    from llmc.graph.runner import Step
    from llmc.stages import STAGES

    assert [s.NAME for s in STAGES] == ["load", "quantize", "shard", "gen_config", "lower", "codegen", "link"]
    assert [s.NAME for s in STAGES if s.EPHEMERAL] == ["quantize"]

    class Misspelt:
        NAME, VERSION, DEFAULTS, TOOLS = "bad", "1", {}, ("python",)
        EPHEMRAL = True

        def run(self, inputs, options, out_dir):
            pass

    with pytest.raises(TypeError, match="EPHEMERAL"):
        Step(Misspelt())


def _digest_of_copy(copy: Path) -> str:
    code = "from llmc.graph import fingerprints; print(fingerprints.compiler_source())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    return r.stdout.strip()


def test_the_lower_key_follows_the_compiler_source(tmp_path):
    """Editing any compiler file (or what it imports from llmc) is a new lower key, with no VERSION bump."""
    copy = tmp_path / "site"
    shutil.copytree(ROOT / "pipeline", copy / "llmc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "store", copy / "llmc" / "store", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "runtime", copy / "llmc" / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    first = _digest_of_copy(copy)
    assert _digest_of_copy(copy) == first
    for edited in ("compiler/schedules.py", "families/llama/nn.py", "quant/layout.py", "devices/cuda.py"):
        path = copy / "llmc" / edited
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        assert _digest_of_copy(copy) != first, edited
        path.write_text(original)
    (copy / "llmc" / "store" / "gc.py").write_text((copy / "llmc" / "store" / "gc.py").read_text() + "\n# gc\n")
    (copy / "llmc" / "cli" / "chat.py").write_text((copy / "llmc" / "cli" / "chat.py").read_text() + "\n# cli\n")
    assert _digest_of_copy(copy) == first  # not code that builds a library


def test_lower_keys_carry_the_compiler_source_and_loads_do_not():
    from llmc.graph.runner import Step
    from llmc.stages import load, lower

    assert "llmc-compiler" in lower.TOOLS({}, {"kind": "llvm"})
    assert "llmc-compiler" not in load.TOOLS
    Step(lower)  # a real stage passes the protocol check


def test_from_llmc_import_mlcengine_is_lazy():
    code = "import sys, llmc; assert 'llmc.runtime' not in sys.modules; from llmc import MLCEngine; print(MLCEngine.__module__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "llmc.runtime.engine"
