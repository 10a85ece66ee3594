"""Compiled libraries against transformers: every architecture variant at q0f32, every quantization."""
import numpy as np
import pytest

from compiled import build, hf_greedy, library, rel_error, run_teacher_forced

PROMPT = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31, 64, 9, 150, 270, 11, 12, 300, 45, 6, 77, 101, 2]
DECODE_STEPS = 8


def check_against_transformers(folder, hf_model, tolerance, same_tokens=True):
    greedy, ref = hf_greedy(hf_model, PROMPT, DECODE_STEPS)
    ours = run_teacher_forced(library(folder), PROMPT, greedy)
    for step, (a, b) in enumerate(zip(ours, ref)):
        err = rel_error(a, b)
        assert err <= tolerance, f"step {step}: relative error {err:.2e} > {tolerance:.0e}"
        if same_tokens:
            assert int(np.argmax(a)) == int(np.argmax(b)), f"step {step}: greedy token differs"


def hf_model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).eval()


def _variants() -> dict:
    """Every family's tiny VARIANTS: a new family folder is tested here by itself."""
    from llmc.families import FAMILIES, tiny_module

    found = {}
    for family in FAMILIES:
        tiny = tiny_module(family)
        for name, spec in tiny.VARIANTS.items():
            found[name] = (tiny.make, spec)
    return found


VARIANTS = _variants()


@pytest.fixture(scope="session")
def variant_model(models_dir):
    made = {}

    def make(name):
        if name not in made:
            maker, spec = VARIANTS[name]
            made[name] = maker(models_dir / name, **spec)
        return made[name]

    return make


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_architecture_q0f32_matches_transformers(name, variant_model, session_store, tmp_path_factory):
    model = variant_model(name)
    # A prefill chunk of 8 splits the 24-token prompt; the mistral window (16) is shorter than it.
    folder = build(model, "q0f32", tmp_path_factory.mktemp(name) / "out", session_store, prefill_chunk_size=8)
    check_against_transformers(folder, hf_model(model), 1e-4)


def test_phi3_crossing_longrope_original_length_in_decode_matches_transformers(variant_model, session_store,
                                                                                tmp_path_factory):
    """A 12-token prompt under an original length of 16 decodes past it: transformers then rotates every
    position with the long factors (its generate drops the cache), and llmc's runtime runs the sequence
    again with the library's *_long functions; before that both use the short factors."""
    model = variant_model("phi3-longrope-past-original")
    folder = build(model, "q0f32", tmp_path_factory.mktemp("phi3-crossing") / "out", session_store,
                   prefill_chunk_size=8)
    prompt = PROMPT[:12]
    greedy, ref = hf_greedy(hf_model(model), prompt, DECODE_STEPS)
    ours = run_teacher_forced(library(folder), prompt, greedy)
    for step, (a, b) in enumerate(zip(ours, ref)):
        assert rel_error(a, b) <= 1e-4, f"step {step} (length {len(prompt) + step}): {rel_error(a, b):.2e}"
        assert int(np.argmax(a)) == int(np.argmax(b))
