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
