"""Our converted folders as MLC's own readers check them (facts from mlc-ai/mlc-llm, checks written here)."""
import json

import numpy as np
import pytest

from llmc.commands.convert_weight import convert_weight

# Bytes per element of the dtypes MLC's tensor cache holds.
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "uint32": 4, "int32": 4, "int8": 1, "uint8": 1}


def mlc_consistency_problems(folder) -> list[str]:
    """What MLC's loaders assert of a tensor cache: the index's ParamSize is the number of parameter
    names (serve engine, embeddings loader, debug_chat: len(param_names) == ParamSize); each record's
    nbytes is its shape times its dtype's size ("raw" format); records of a shard are contiguous from
    offset 0 and fill the shard, whose size is the shard record's nbytes."""
    index = json.loads((folder / "tensor-cache.json").read_text())
    problems, names = [], []
    for shard in index["records"]:
        offset = 0
        for rec in shard["records"]:
            names.append(rec["name"])
            want = int(np.prod(rec["shape"], dtype=np.int64)) * ITEMSIZE[rec["dtype"]]
            if rec["format"] == "raw" and rec["nbytes"] != want:
                problems.append(f"{rec['name']}: nbytes {rec['nbytes']} != {want}")
            if rec["byteOffset"] != offset:
                problems.append(f"{rec['name']}: byteOffset {rec['byteOffset']} != {offset}")
            offset += rec["nbytes"]
        if offset != shard["nbytes"] or (folder / shard["dataPath"]).stat().st_size != shard["nbytes"]:
            problems.append(f"{shard['dataPath']}: records end at {offset}, shard nbytes {shard['nbytes']}")
    if len(names) != index["metadata"]["ParamSize"]:
        problems.append(f"ParamSize {index['metadata']['ParamSize']} != {len(names)} parameter names")
    if len(set(names)) != len(names):
        problems.append("duplicate parameter names")
    return problems


@pytest.mark.parametrize("quant", ["q4f16_1", "q0f32", "q3f16_0"])
def test_a_converted_tiny_llama_passes_mlcs_consistency_check(tiny_llama, session_store, tmp_path, quant):
    convert_weight(str(tiny_llama), quant, tmp_path / "out", session_store)
    assert mlc_consistency_problems(tmp_path / "out") == []


def test_the_check_can_fail(tiny_llama, session_store, tmp_path):
    out = tmp_path / "out"
    convert_weight(str(tiny_llama), "q4f16_1", out, session_store)
    index = json.loads((out / "tensor-cache.json").read_text())
    index["metadata"]["ParamSize"] += 1
    index["records"][0]["records"][1]["byteOffset"] += 4
    (out / "tensor-cache.json").write_text(json.dumps(index))
    problems = mlc_consistency_problems(out)
    assert any("ParamSize" in p for p in problems) and any("byteOffset" in p for p in problems)


SPACE = "\u2581"
LLAMA2_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": SPACE}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


# tokenizer.json shapes and the tokenizer_info MLC's Tokenizer::DetectTokenizerInfo
# (cpp/tokenizers/tokenizers.cc) gives them: (token_postproc_method, prepend_space_in_encode, strip_space_in_decode)
TOKENIZER_SHAPES = {
    "llama2-sentencepiece": ({"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": SPACE}, {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
        "decoder": LLAMA2_DECODER}, ("byte_fallback", True, True)),
    "gpt2-byte-level": ({"pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"}},
                        ("byte_level", False, False)),
    "metaspace-prepend-first": ({"pre_tokenizer": {"type": "Metaspace", "replacement": SPACE,
                                                   "prepend_scheme": "first"},
                                 "decoder": {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first"}},
                                ("byte_fallback", False, False)),
    "unigram-metaspace-decoder": ({"model": {"type": "Unigram"}, "decoder": {"type": "Metaspace"}},
                                  ("byte_fallback", False, False)),
    "no-decoder": ({"pre_tokenizer": {"type": "ByteLevel"}}, ("byte_fallback", False, False)),
    "byte-level-decoder-byte-fallback-model": ({"model": {"type": "BPE", "byte_fallback": True},
                                                "decoder": {"type": "ByteLevel"}}, ("byte_level", False, False)),
    "strip-start-2": ({"decoder": {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Strip", "content": " ", "start": 2, "stop": 0}]}},
        ("byte_fallback", False, False)),
    "last-of-a-sequence-wins": ({"decoder": {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "ByteLevel"}]}}, ("byte_level", False, False)),
}


@pytest.mark.parametrize("shape", list(TOKENIZER_SHAPES))
def test_tokenizer_info_is_what_mlc_detects(tmp_path, shape):
    from llmc.chat.tokenizer_files import info

    spec, (method, prepend, strip) = TOKENIZER_SHAPES[shape]
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    assert info(tmp_path) == {"token_postproc_method": method, "prepend_space_in_encode": prepend,
                              "strip_space_in_decode": strip}


def test_without_tokenizer_json_the_info_is_mlcs_default(tmp_path):
    from llmc.chat.tokenizer_files import info

    assert info(tmp_path) == {"token_postproc_method": "byte_fallback", "prepend_space_in_encode": False,
                              "strip_space_in_decode": False}


# ---- mlc-chat-config.json, field by field as MLC's gen_config writes it -------------------------
@pytest.fixture(scope="module")
def mlc_chat_config(models_dir, session_store, tmp_path_factory):
    """gen_config of a llama with a float rope_theta and 320 vocabulary rows over a 300-token tokenizer."""
    from tiny_models import make_llama, make_tokenizer

    from llmc.commands.gen_config import generate_config

    model = make_llama(models_dir / "mlc-pinned-llama", vocab=320, rope_theta=500000.0)
    make_tokenizer(model, 300)
    out = tmp_path_factory.mktemp("pinned") / "out"
    generate_config(str(model), "q4f16_1", "chatml", out, session_store)
    return json.loads((out / "mlc-chat-config.json").read_text())


def test_index_metadata_types_are_mlcs(tiny_llama, session_store, tmp_path):
    # python/mlc_llm/interface/convert_weight.py, _convert_args -> tvmjs.dump_tensor_cache(meta_data=...):
    # ParamSize = len(param_names), ParamBytes = float total bytes, BitsPerParam = bytes * 8.0 / elements
    convert_weight(str(tiny_llama), "q4f16_1", tmp_path / "out", session_store)
    index = json.loads((tmp_path / "out" / "tensor-cache.json").read_text())
    meta = index["metadata"]
    assert meta["ParamSize"] == sum(len(shard["records"]) for shard in index["records"])
    assert isinstance(meta["ParamBytes"], float) and isinstance(meta["BitsPerParam"], float)


def test_active_vocab_size_is_the_tokenizers_length(mlc_chat_config):
    # python/mlc_llm/interface/gen_config.py, gen_config: active_vocab_size = len(AutoTokenizer...)
    assert mlc_chat_config["vocab_size"] == 320 and mlc_chat_config["active_vocab_size"] == 300


def test_conv_template_keeps_none_fields_and_the_reasoning_flag(mlc_chat_config):
    # python/mlc_llm/interface/gen_config.py dumps MLCChatConfig.model_dump(by_alias=True), which keeps None;
    # python/mlc_llm/protocol/conversation_protocol.py, Conversation: strip_reasoning_in_history: bool = False
    conv = mlc_chat_config["conv_template"]
    assert conv["system_prefix_token_ids"] is None
    assert conv["strip_reasoning_in_history"] is False


def test_top_level_fields_mlc_adds(mlc_chat_config):
    # python/mlc_llm/protocol/mlc_chat_config.py, MLCChatConfig: model_task = "chat", embedding_metadata = None
    assert mlc_chat_config["model_task"] == "chat"
    assert "embedding_metadata" in mlc_chat_config and mlc_chat_config["embedding_metadata"] is None


def test_llama_model_config_fields_mlc_writes(mlc_chat_config):
    # python/mlc_llm/model/llama/llama_model.py, LlamaConfig: disaggregation: bool = False, and
    # position_embedding_base taken from rope_theta as read (a dataclass: no int coercion)
    cfg = mlc_chat_config["model_config"]
    assert cfg["disaggregation"] is False
    assert cfg["position_embedding_base"] == 500000.0 and isinstance(cfg["position_embedding_base"], float)


def test_a_whole_rope_theta_written_as_an_int_stays_an_int(tiny_llama, session_store, tmp_path):
    from llmc.commands.gen_config import generate_config

    generate_config(str(tiny_llama), "q0f32", "chatml", tmp_path / "out", session_store)
    base = json.loads((tmp_path / "out" / "mlc-chat-config.json").read_text())["model_config"]["position_embedding_base"]
    source = json.loads((tiny_llama / "config.json").read_text())
    theta = source.get("rope_theta", (source.get("rope_parameters") or {}).get("rope_theta", 10000))
    assert base == theta and type(base) is type(theta)


def test_sinks_and_tokenizer_files_as_mlc_writes_them(mlc_chat_config):
    # python/mlc_llm/interface/gen_config.py: attention_sink_size=getattr(model_config, "attention_sink_size", -1);
    # tokenizer files copied in TOKENIZER_FILES order (tokenizer.model, tokenizer.json, vocab.json,
    # merges.txt, added_tokens.json, tokenizer_config.json)
    assert mlc_chat_config["attention_sink_size"] == -1
    assert mlc_chat_config["tokenizer_files"] == ["tokenizer.json", "tokenizer_config.json"]


def test_a_reasoning_template_drops_earlier_thoughts():
    from llmc.chat import templates

    # python/mlc_llm/conversation_template/qwen3.py: qwen3 sets strip_reasoning_in_history=True
    conv = templates.get("qwen3")
    assert conv["strip_reasoning_in_history"] is True
    history = [("user", "Hi"), ("assistant", "<think>\nsay hello\n</think>\n\nHello"), ("user", "Q2")]
    prompt = templates.render(conv, history)
    assert "say hello" not in prompt and "<|im_start|>assistant\nHello<|im_end|>" in prompt
    assert "say hello" in templates.render(templates.get("qwen2"), history)
