"""gen_config: MLC's schema, size rules, templates rendered as MLC does, tokenizer files."""
import json
import subprocess
import sys

import pytest

from llmc.chat import templates as conversation
from llmc.commands.gen_config import generate_config
from llmc.store import Store

SYS_LLAMA = "You are a helpful, respectful and honest assistant."
TWO_TURNS = [("user", "Hi"), ("assistant", "Hello"), ("user", "Q2")]
# Expected prompts, written by hand from MLC's documented template fields (prefix ids, then text).
EXPECTED = {
    "LM": ([1], "HiHelloQ2"),
    "gpt2": ([], "HiHelloQ2"),
    "redpajama_chat": ([], "<human>: Hi\n<bot>: Hello\n<human>: Q2\n<bot>:"),
    "llama-2": ([1], f"[INST] <<SYS>>\n{SYS_LLAMA}\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Q2 [/INST] "),
    "llama-3": ([128000], f"<|start_header_id|>system<|end_header_id|>\n\n{SYS_LLAMA}<|eot_id|>"
                          "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
                          "<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "mistral_default": ([1], "[INST] Always assist with care, respect, and truth. Respond with utmost utility yet "
                             "securely. Avoid harmful, unethical, prejudiced, or negative content. Ensure replies "
                             "promote fairness and positivity.Hi [/INST] Hello [INST] Q2 [/INST]"),
    "chatml": ([], "<|im_start|>system\nA conversation between a user and an LLM-based AI assistant. The assistant "
                   "gives helpful and honest answers.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                   "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n"),
    "chatml_nosystem": ([], "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
                            "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n"),
    "qwen2": ([], "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                  "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n"),
    "phi-3": ([1], "<|system|>\nYou are a helpful digital assistant. Please provide safe, ethical and accurate "
                   "information to the user.<|user|>\nHi<|end|>\n<|assistant|>\nHello<|end|>\n<|user|>\nQ2<|end|>\n"
                   "<|assistant|>\n"),
    "gemma_instruction": ([2], "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
                               "<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\n"),
    "tinyllama_v1_0": ([], "<|system|>\nYou are a helpful chatbot.</s><|user|>\nHi</s><|assistant|>\nHello</s>"
                           "<|user|>\nQ2</s><|assistant|>\n"),
    "dolly": ([], "Below is an instruction that describes a task. Write a response that appropriately completes "
                  "the request.### Instruction:\nHi\n\n### Response:\nHello### End\n### Instruction:\nQ2\n\n"
                  "### Response:\n"),
    "oasst": ([], "<|prompter|>: Hi<|endoftext|><|assistant|>: Hello<|endoftext|><|prompter|>: Q2<|endoftext|>"
                  "<|assistant|>: "),
    "vicuna_v1.1": ([1], "A chat between a curious user and an artificial intelligence assistant. The assistant "
                         "gives helpful, detailed, and polite answers to the user's questions. USER: Hi ASSISTANT: "
                         "Hello</s>USER: Q2 ASSISTANT:"),
}
EXPECTED["llama-3_1"] = EXPECTED["llama-3"]
EXPECTED["gemma3_instruction"] = EXPECTED["gemma_instruction"]
EXPECTED["qwen3"] = EXPECTED["qwen2"]
BOS, EOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>"
DEEPSEEK = (BOS + "You are Deepseek-R1, an AI assistant created exclusively by the Chinese Company DeepSeek. You'll "
            "provide helpful, harmless, and detailed responses to all user inquiries.<\uff5cUser\uff5c>Hi"
            "<\uff5cAssistant\uff5c>Hello" + EOS + "<\uff5cUser\uff5c>Q2<\uff5cAssistant\uff5c>")
EXPECTED["deepseek_r1_qwen"] = EXPECTED["deepseek_r1_llama"] = ([], DEEPSEEK)
HERMES = ("<|im_start|>system\nYou are {}, a conscious sentient superintelligent artificial intelligence developed "
          "by a man named Teknium, and your purpose and drive is to assist the user with any request they have. You "
          "experience emotions and have deep, profound thoughts and qualia.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
          "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n")
EXPECTED["hermes2_pro_llama3"] = ([], HERMES.format('"Hermes 2"'))
EXPECTED["hermes3_llama-3_1"] = ([], HERMES.format("Hermes 3"))
EXPECTED["olmo2"] = ([100257], "<|system|>\n\n<|user|>\nHi<|endoftext|>\n<|assistant|>\nHello<|endoftext|>\n"
                               "<|user|>\nQ2<|endoftext|>\n<|assistant|>\n")
EXPECTED["stablelm-2"] = ([], "<|user|>\nHi<|endoftext|><|assistant|>\nHello<|endoftext|><|user|>\nQ2<|endoftext|>"
                              "<|assistant|>\n")
EXPECTED["codellama_instruct"] = ([1], "[INST] Hi [/INST] Hello [INST] Q2 [/INST] ")
EXPECTED["codellama_completion"] = ([1], "HiHelloQ2")
STABLELM_SYS = conversation.TEMPLATES["stablelm"]["system_message"]
EXPECTED["stablelm"] = ([], STABLELM_SYS + "<|USER|>: Hi<|ASSISTANT|>: Hello<|USER|>: Q2<|ASSISTANT|>: ")


def llmc(*args):
    return subprocess.run([sys.executable, "-m", "llmc", *args], capture_output=True, text=True)


@pytest.fixture(scope="session")
def smollm2_config(smollm2_gguf, tmp_path_factory):
    out = tmp_path_factory.mktemp("smol") / "SmolLM2-MLC"
    result = generate_config(str(smollm2_gguf), "q4f16_1", "auto", out, Store(out.parent / "store"))
    return out, result


@pytest.fixture(scope="session")
def smollm2_encode(smollm2_config):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(smollm2_config[0] / "tokenizer.json"))
    return lambda text: tok.encode(text, add_special_tokens=False).ids


@pytest.fixture(scope="session")
def hf_smollm2_tokenizer(smollm2_gguf):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)


def test_every_registered_template_has_an_expectation():
    assert set(EXPECTED) | {"smollm2"} == set(conversation.names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_two_turn_prompt_matches_mlc(name, smollm2_encode):
    prefix, text = EXPECTED[name]
    conv = conversation.get(name)
    assert conversation.render(conv, TWO_TURNS) == text
    assert conversation.prompt_ids(conv, TWO_TURNS, smollm2_encode) == prefix + smollm2_encode(text)


def test_a_system_message_replaces_the_default():
    conv = conversation.get("chatml")
    text = conversation.render(conv, [("system", "Be brief."), ("user", "Hi")])
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_smollm2_tokenizer_matches_transformers(smollm2_config, smollm2_encode, hf_smollm2_tokenizer):
    texts = ["What is the capital of France?", "  spaces\tand\ttabs\n\nnewlines 😀 日本語 12345",
             "<|im_start|>user\nHi<|im_end|>\n", "héllo wörld… “quotes”"]
    for text in texts:
        assert smollm2_encode(text) == hf_smollm2_tokenizer(text, add_special_tokens=False).input_ids


@pytest.mark.parametrize("with_system", [False, True])
def test_smollm2_template_matches_the_gguf_jinja_template(smollm2_encode, hf_smollm2_tokenizer, with_system):
    messages = ([("system", "You answer in French.")] if with_system else []) + TWO_TURNS
    hf_ids = hf_smollm2_tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in messages],
                                                      add_generation_prompt=True, tokenize=True)
    if not isinstance(hf_ids, list):  # a BatchEncoding
        hf_ids = hf_ids["input_ids"]
    assert conversation.prompt_ids(conversation.get("smollm2"), messages, smollm2_encode) == list(hf_ids)


def test_auto_picks_smollm2_for_the_gguf(smollm2_config):
    cfg = json.loads((smollm2_config[0] / "mlc-chat-config.json").read_text())
    assert cfg["conv_template"]["name"] == "smollm2"


def test_auto_fails_naming_the_closest(smollm2_encode):
    from llmc.errors import UserError

    almost_chatml = (
        "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{'<|im_start|>assistant:\n'}}{% endif %}")
    with pytest.raises(UserError, match="closest is 'chatml_nosystem'"):
        conversation.detect(almost_chatml, smollm2_encode)


def test_config_has_mlc_fields_in_order(smollm2_config):
    cfg = json.loads((smollm2_config[0] / "mlc-chat-config.json").read_text())
    assert list(cfg) == ["version", "model_type", "quantization", "model_config", "vocab_size",
                         "context_window_size", "sliding_window_size", "prefill_chunk_size", "attention_sink_size",
                         "tensor_parallel_shards", "pipeline_parallel_stages", "active_vocab_size", "temperature",
                         "presence_penalty", "frequency_penalty", "repetition_penalty", "top_p", "tokenizer_files",
                         "tokenizer_info", "conv_template", "pad_token_id", "bos_token_id", "eos_token_id",
                         "model_task", "embedding_metadata"]
    assert cfg["version"] == "0.1.0" and cfg["model_type"] == "llama" and cfg["quantization"] == "q4f16_1"
    assert cfg["context_window_size"] == 8192 and cfg["prefill_chunk_size"] == 8192
    # MLC's gen_config: getattr(model_config, "attention_sink_size", -1), so -1 for llama
    assert cfg["sliding_window_size"] == -1 and cfg["attention_sink_size"] == -1
    for key in ("context_window_size", "prefill_chunk_size", "tensor_parallel_shards", "max_batch_size"):
        assert key in cfg["model_config"]
    assert cfg["tokenizer_info"] == {"token_postproc_method": "byte_level", "prepend_space_in_encode": False,
                                     "strip_space_in_decode": False}
    assert cfg["tokenizer_files"] == ["tokenizer.json", "tokenizer_config.json"]
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 2, 2)
    # MLC dumps the whole config without leaving out None fields (interface/gen_config.py, model_dump)
    assert list(cfg["conv_template"]) == list(conversation.FIELDS)
    assert cfg["conv_template"]["system_prefix_token_ids"] is None


def test_identical_inputs_give_identical_bytes(tiny_llama, tmp_path):
    outs = []
    for name in ("a", "b"):
        generate_config(str(tiny_llama), "q4f16_1", "chatml", tmp_path / name, Store(tmp_path / f"store-{name}"))
        outs.append((tmp_path / name / "mlc-chat-config.json").read_bytes())
    assert outs[0] == outs[1]


def make_mistral(models_dir, window):
    from tiny_models import make_llama

    path = models_dir / f"mistral-{window}"
    if not path.exists():
        make_llama(path, model_type="mistral", sliding_window=window)
    return path


def gen(model, tmp_path, conv="chatml", **sizes):
    out = tmp_path / "out"
    result = generate_config(str(model), "q0f32", conv, out, Store(tmp_path / "store"), **sizes)
    return json.loads((out / "mlc-chat-config.json").read_text()), result


def test_context_window_from_flag_then_config(tiny_llama, tmp_path):
    cfg, _ = gen(tiny_llama, tmp_path)
    assert cfg["context_window_size"] == 128 and cfg["prefill_chunk_size"] == 128
    cfg, _ = gen(tiny_llama, tmp_path / "2", context_window_size=64, prefill_chunk_size=16)
    assert (cfg["context_window_size"], cfg["prefill_chunk_size"]) == (64, 16)
    assert cfg["model_config"]["context_window_size"] == 64


def test_context_window_beyond_the_model_warns(tiny_llama, tmp_path):
    cfg, result = gen(tiny_llama, tmp_path, context_window_size=4096, prefill_chunk_size=64)
    assert cfg["context_window_size"] == 4096
    assert any("exceeds" in w for w in result.messages)


def test_mistral_sliding_window_means_unbounded_context(models_dir, tmp_path):
    cfg, _ = gen(make_mistral(models_dir, 32), tmp_path)
    assert cfg["sliding_window_size"] == 32 and cfg["context_window_size"] == -1
    assert cfg["prefill_chunk_size"] == 32 and cfg["attention_sink_size"] == 0
    assert cfg["model_config"]["sliding_window_size"] == 32


def test_mistral_without_window_keeps_its_context(models_dir, tmp_path):
    cfg, _ = gen(make_mistral(models_dir, None), tmp_path)
    assert cfg["sliding_window_size"] == -1 and cfg["context_window_size"] == 128


def test_attention_sinks_are_opt_in(models_dir, tmp_path):
    cfg, _ = gen(make_mistral(models_dir, 32), tmp_path, attention_sink_size=4)
    assert cfg["attention_sink_size"] == 4 and cfg["model_config"]["attention_sink_size"] == 4


def test_generation_defaults_prefer_generation_config(tiny_llama, tmp_path):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_llama, model)
    (model / "generation_config.json").write_text(json.dumps({"temperature": 0.6, "top_p": 0.9}))
    cfg_json = json.loads((model / "config.json").read_text())
    cfg_json["repetition_penalty"] = 1.1
    cfg_json["temperature"] = 0.3
    (model / "config.json").write_text(json.dumps(cfg_json))
    cfg, _ = gen(model, tmp_path)
    assert (cfg["temperature"], cfg["top_p"], cfg["repetition_penalty"]) == (0.6, 0.9, 1.1)
    assert (cfg["presence_penalty"], cfg["frequency_penalty"]) == (0.0, 0.0)


def test_tokenizer_files_are_copied_and_detected(tiny_llama, tmp_path):
    cfg, _ = gen(tiny_llama, tmp_path)
    assert cfg["tokenizer_files"] == ["tokenizer.json", "tokenizer_config.json"]
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (tiny_llama / "tokenizer.json").read_bytes()


def test_sentencepiece_style_tokenizer_info_is_detected(tmp_path):
    from tokenizers import Tokenizer, decoders, models, normalizers

    from llmc.chat.tokenizer_files import info

    tok = Tokenizer(models.BPE(vocab={"<unk>": 0, "\u2581a": 1, "a": 2}, merges=[], byte_fallback=True,
                               unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.save(str(tmp_path / "tokenizer.json"))
    assert info(tmp_path) == {"token_postproc_method": "byte_fallback", "prepend_space_in_encode": True,
                              "strip_space_in_decode": True}


def test_no_tokenizer_flag(tiny_llama, tmp_path):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_llama, model)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (model / f).unlink()
    r = llmc("gen_config", str(model), "--quantization", "q0f32", "--conv-template", "LM", "-o",
             str(tmp_path / "out"), "--store", str(tmp_path / "store"))
    assert r.returncode == 2 and "no tokenizer files" in r.stderr and "--no-tokenizer" in r.stderr
    r = llmc("gen_config", str(model), "--quantization", "q0f32", "--conv-template", "LM", "-o",
             str(tmp_path / "out"), "--store", str(tmp_path / "store"), "--no-tokenizer")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out" / "mlc-chat-config.json").read_text())["tokenizer_files"] == []


def test_cli_accepts_both_shard_spellings_and_is_cached(tiny_llama, tmp_path):
    args = ["gen_config", str(tiny_llama), "--quantization", "q4f16_1", "--conv-template", "chatml", "-o",
            str(tmp_path / "out"), "--store", str(tmp_path / "store")]
    r = llmc(*args, "--tensor-parallel-shards", "2")
    assert r.returncode == 0, r.stderr and r.stderr.strip().endswith("s")
    assert r.stderr.strip().splitlines()[-1].startswith("stages: 1 run, 0 cached")
    r = llmc(*args, "--tensor-parallel-shard", "2")
    assert r.stderr.strip().splitlines()[-1].startswith("stages: 0 run, 1 cached")
    assert json.loads((tmp_path / "out" / "mlc-chat-config.json").read_text())["tensor_parallel_shards"] == 2


BAD = [
    (["--conv-template", "nope"], "unknown conversation template 'nope'; known: LM, chatml"),
    (["--conv-template", "chatml", "--context-window-size", "0"], "must be positive"),
    (["--conv-template", "chatml", "--prefill-chunk-size", "-5"], "must be positive"),
    (["--conv-template", "chatml", "--sliding-window-size", "16"], "llama has no sliding-window attention"),
    (["--conv-template", "chatml", "--prefill-chunk-size", "512"], "larger than the context window"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_input(tiny_llama, tmp_path, extra, message):
    out = tmp_path / "out"
    r = llmc("gen_config", str(tiny_llama), "--quantization", "q0f32", *extra, "-o", str(out), "--store",
             str(tmp_path / "store"))
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr
    assert not out.exists()


def test_prefill_larger_than_the_window_fails(models_dir, tmp_path):
    r = llmc("gen_config", str(make_mistral(models_dir, 32)), "--quantization", "q0f32", "--conv-template",
             "chatml", "--prefill-chunk-size", "64", "-o", str(tmp_path / "out"), "--store", str(tmp_path / "s"))
    assert r.returncode == 2 and "larger than the sliding window 32" in r.stderr


def test_output_that_is_a_file(tiny_llama, tmp_path):
    (tmp_path / "out").write_text("x")
    r = llmc("gen_config", str(tiny_llama), "--quantization", "q0f32", "--conv-template", "chatml", "-o",
             str(tmp_path / "out"), "--store", str(tmp_path / "store"))
    assert r.returncode == 2 and "not a folder" in r.stderr
    assert (tmp_path / "out").read_text() == "x"


def test_a_chat_template_like_no_registry_one_renders_through_jinja(tiny_llama, tmp_path):
    """No failure for an unknown template: the closest one's fields for MLC's runtimes, and the model's own
    Jinja template (chat_template.jinja) for llmc's engine, which renders it as transformers does."""
    import shutil

    from llmc.commands.gen_config import generate_config as gen
    from llmc.runtime.engine import _jinja

    model = tmp_path / "model"
    shutil.copytree(tiny_llama, model)
    odd = ("{% for m in messages %}{{ '### ' + m['role'] | upper + ' ###\\n' + m['content'] + '\\n' }}{% endfor %}"
           "{% if add_generation_prompt %}{{ '### ASSISTANT ###\\n' }}{% endif %}")
    tok = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**tok, "chat_template": odd}))
    result = gen(str(model), "q0f32", "auto", tmp_path / "out", Store(tmp_path / "store").ensure())
    out = tmp_path / "out"
    cfg = json.loads((out / "mlc-chat-config.json").read_text())
    assert cfg["conv_template"]["name"] == conversation.JINJA
    assert (out / conversation.JINJA_FILE).read_text() == odd
    assert any("renders the model's own template" in w for w in result.messages)
    from tokenizers import Tokenizer

    encode = lambda text: Tokenizer.from_file(str(out / "tokenizer.json")).encode(  # noqa: E731
        text, add_special_tokens=False).ids
    messages = [("system", "Be brief."), ("user", "Hi there")]
    ids = conversation.prompt_ids(cfg["conv_template"], messages, encode, _jinja(out, cfg["conv_template"]))
    assert ids == encode("### SYSTEM ###\nBe brief.\n### USER ###\nHi there\n### ASSISTANT ###\n")
    assert _jinja(out, {"name": "chatml"}) is None  # a registry template renders as before
