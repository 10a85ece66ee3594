"""Bad values in the configs we read: a one-line error naming the field, exit code 2, nothing written.

Each row: which file to spoil and how, the command, and words the error must contain."""
import json
import os
import shutil

import pytest

from llmc import cli


def spoil_hf(**changes):
    def apply(folder):
        cfg = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if value is DELETE:
                cfg.pop(key, None)
            else:
                cfg[key] = value
        (folder / "config.json").write_text(json.dumps(cfg))
    return apply


DELETE = object()
LLAMA3 = {"rope_type": "llama3", "original_max_position_embeddings": 64}

CONVERT_CASES = [
    ("heads-string", spoil_hf(num_attention_heads="4"), "num_attention_heads='4' must be an integer"),
    ("heads-zero", spoil_hf(num_attention_heads=0), "num_attention_heads=0 must be at least 1"),
    ("heads-null", spoil_hf(num_attention_heads=None), "has no num_attention_heads"),
    ("eps-string", spoil_hf(rms_norm_eps="abc"), "rms_norm_eps='abc' must be a number"),
    ("positions-string", spoil_hf(max_position_embeddings="abc"), "max_position_embeddings='abc' must be an integer"),
    ("positions-huge", spoil_hf(max_position_embeddings=2 ** 40), "must be from 1 to 16777216"),
    ("rope-params-string", spoil_hf(rope_parameters="yes"), "rope_parameters='yes' must be an object"),
    ("llama3-without-factor", spoil_hf(rope_scaling=LLAMA3, rope_parameters=DELETE), "needs factor"),
    ("tie-string", spoil_hf(tie_word_embeddings="false"), "tie_word_embeddings='false' must be true or false"),
    ("kv-heads-string", spoil_hf(num_key_value_heads="2"), "num_key_value_heads='2' must be an integer"),
]


@pytest.fixture
def model_copy(tiny_llama, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for path in tiny_llama.iterdir():
        if path.name == "config.json":
            shutil.copy(path, folder / path.name)
        else:
            os.symlink(path, folder / path.name)
    return folder


def run_one_line(argv, capsys) -> str:
    code = cli.run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (code, err)
    return err[0]


@pytest.mark.parametrize("name, spoil, words", CONVERT_CASES, ids=[c[0] for c in CONVERT_CASES])
def test_a_bad_model_config_is_one_line_exit_2_and_writes_nothing(model_copy, tmp_path, capsys, name, spoil,
                                                                    words):
    spoil(model_copy)
    out = tmp_path / "out"
    for command in ("convert_weight", "gen_config"):
        extra = ["--conv-template", "chatml"] if command == "gen_config" else []
        line = run_one_line([command, str(model_copy), "--quantization", "q4f16_1", "-o", str(out), *extra,
                             "--store", str(tmp_path / "s")], capsys)
        assert words in line, line
        assert not out.exists()


def test_a_context_window_beyond_any_model_is_refused(tiny_llama, tmp_path, capsys):
    line = run_one_line(["gen_config", str(tiny_llama), "--quantization", "q4f16_1", "--conv-template", "chatml",
                         "--context-window-size", str(2 ** 40), "-o", str(tmp_path / "out"), "--store",
                         str(tmp_path / "s")], capsys)
    assert "--context-window-size 1099511627776 is beyond any model's reach" in line
    assert not (tmp_path / "out").exists()


@pytest.fixture
def configured(tiny_llama, tmp_path, capsys):
    out = tmp_path / "m"
    for command, extra in (("convert_weight", []), ("gen_config", ["--conv-template", "chatml"])):
        assert cli.run([command, str(tiny_llama), "--quantization", "q4f16_1", "-o", str(out), *extra, "--store",
                        str(tmp_path / "s")]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize("file, key, value, words", [
    ("mlc-chat-config.json", "prefill_chunk_size", "abc", "prefill_chunk_size='abc' in mlc-chat-config.json"),
    ("mlc-chat-config.json", "context_window_size", 2 ** 40, "must be an integer from -1 to 16777216"),
    ("tensor-cache.json", "records", "oops", "records must be a list of shards"),
])
def test_a_bad_chat_config_or_index_stops_compile_in_one_line(configured, tmp_path, capsys, file, key, value,
                                                                words):
    path = configured / file
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data))
    line = run_one_line(["compile", str(configured), "-o", str(tmp_path / "lib.so"), "--store", str(tmp_path / "s")],
                        capsys)
    assert words in line and not (tmp_path / "lib.so").exists()


@pytest.mark.parametrize("argv, words", [
    (["convert_weight", "{model}", "--quantization", "q4f16_1", "-o", ""], "is empty"),
    (["gen_config", "{model}", "--quantization", "q4f16_1", "--conv-template", "chatml", "-o", " "], "is empty"),
    (["convert_weight", "{model}", "--quantization", "q4f16_1", "-o", "{tmp}/out", "--device", "bogus"],
     "--device 'bogus' is not a device"),
    (["convert_weight", "{model}", "--quantization", "q4f16_1", "-o", "{tmp}/out", "--device", "cuda:x"],
     "--device 'cuda:x' is not a device"),
])
def test_an_empty_output_or_an_unknown_device_is_refused(tiny_llama, tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(model=tiny_llama, tmp=tmp_path) for a in argv] + ["--store", str(tmp_path / "s")]
    line = run_one_line(argv, capsys)
    assert words in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even the store


def test_convert_weight_takes_mlcs_device_names(tiny_llama, tmp_path):
    assert cli.run(["convert_weight", str(tiny_llama), "--quantization", "q0f32", "-o", str(tmp_path / "out"),
                    "--device", "cuda:0", "--store", str(tmp_path / "s")]) == 0


def test_a_weight_index_mapping_a_tensor_to_a_list_is_refused(model_copy, tmp_path, capsys):
    (model_copy / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"lm_head.weight": ["a"]}}))
    line = run_one_line(["convert_weight", str(model_copy), "--quantization", "q0f32", "-o", str(tmp_path / "out"),
                         "--store", str(tmp_path / "s")], capsys)
    assert "weight_map must map each tensor name to one file name" in line


def test_a_truncated_tokenizer_json_is_refused(model_copy, tmp_path, capsys):
    text = (model_copy / "tokenizer.json").read_text()
    (model_copy / "tokenizer.json").unlink()
    (model_copy / "tokenizer.json").write_text(text[:500])
    line = run_one_line(["gen_config", str(model_copy), "--quantization", "q0f32", "--conv-template", "chatml",
                         "-o", str(tmp_path / "out"), "--store", str(tmp_path / "s")], capsys)
    assert "tokenizer.json is not a tokenizer the tokenizers library can read" in line
    assert not (tmp_path / "out").exists()


def test_a_store_path_the_file_system_refuses_is_one_line(tiny_llama, tmp_path, capsys):
    line = run_one_line(["convert_weight", str(tiny_llama), "--quantization", "q0f32", "-o", str(tmp_path / "out"),
                         "--store", str(tmp_path / ("x" * 300))], capsys)
    assert line.startswith("error: cannot use the store at") and line.endswith("File name too long")


def test_a_config_with_fewer_layers_than_the_weights_is_refused(model_copy, tmp_path, capsys):
    spoil_hf(num_hidden_layers=1)(model_copy)  # the tiny llama has 2
    line = run_one_line(["convert_weight", str(model_copy), "--quantization", "q0f32", "-o", str(tmp_path / "out"),
                         "--store", str(tmp_path / "s")], capsys)
    assert "have layer(s) 1..1 beyond the config's num_hidden_layers=1" in line
    assert not (tmp_path / "out").exists()
