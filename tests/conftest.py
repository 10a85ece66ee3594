import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TVM_NUM_THREADS", str(os.cpu_count() or 2))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

# Modules that import TVM or compile models: marked `tvm`. `pytest -m "not tvm"` (the fast loop) does not
# even collect them, so it never imports TVM.
TVM_MODULES = {"test_attention_kernels", "test_chat_cli", "test_compile", "test_compile_correctness",
               "test_compile_o3", "test_compile_quantized", "test_devices", "test_engine", "test_gpu_build", "test_fast_math",
               "test_int8_matmul", "test_layer_functions", "test_parallel_lowering", "test_moe", "test_remote", "test_smollm2", "test_family_presets", "test_serve"}


def pytest_ignore_collect(collection_path, config):
    if collection_path.stem in TVM_MODULES and "not tvm" in (config.getoption("markexpr") or ""):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.stem in TVM_MODULES:
            item.add_marker(pytest.mark.tvm)


@pytest.fixture
def store(tmp_path):
    from llmc.store import Store

    return Store(tmp_path / "store").ensure()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_llama(models_dir):
    """GQA, untied lm_head: the model most tests convert and compile."""
    from tiny_models import make_llama

    return make_llama(models_dir / "tiny-llama")


@pytest.fixture(scope="session")
def smollm2_gguf():
    from tiny_models import smollm2_gguf as fetch

    return fetch()


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_gguf):
    """transformers' own reading of the SmolLM2 GGUF (an oracle we did not write); loaded once."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    return model.eval()


@pytest.fixture(scope="session")
def session_store(tmp_path_factory):
    """One store for the whole session, so each library is compiled once."""
    from llmc.store import Store

    return Store(tmp_path_factory.mktemp("session-store"))


@pytest.fixture(scope="session")
def smollm2_built(smollm2_gguf, session_store, tmp_path_factory):
    """SmolLM2-135M-Instruct converted, configured (conv template auto) and compiled, per quantization."""
    from compiled import build

    root = tmp_path_factory.mktemp("smollm2")
    made = {}

    def make(quant):
        if quant not in made:
            made[quant] = build(smollm2_gguf, quant, root / f"SmolLM2-{quant}-MLC", session_store, conv="auto")
        return made[quant]

    return make
