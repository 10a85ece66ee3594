"""What a family cannot do yet says so by name, in one line, exit code 2 (no TVM: refused before lowering)."""
import json

import numpy as np

from llmc import cli


def _converted(family, variant, models_dir, tmp_path, capsys):
    from llmc import families

    tiny = families.tiny_module(getattr(families, family))
    model = tiny.make(models_dir / f"limits-{variant}", **tiny.VARIANTS[variant])
    store = str(tmp_path / "store")
    for args in (["convert_weight", str(model), "--quantization", "q0f32", "-o", str(tmp_path / "out")],
                 ["gen_config", str(model), "--quantization", "q0f32", "--conv-template", "chatml",
                  "-o", str(tmp_path / "out")]):
        assert cli.run([*args, "--store", store]) == 0
    capsys.readouterr()
    return tmp_path / "out", store


def _one_line_error(code, capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_gemma_on_a_gpu_device_names_the_missing_kernels(models_dir, tmp_path, capsys):
    folder, store = _converted("gemma", "gemma2-softcap", models_dir, tmp_path, capsys)
    for device in ("cuda", "metal", "webgpu"):  # (vulkan is refused before: no SPIR-V code generator)
        code = cli.run(["compile", str(folder), "--device", device, "-o", str(tmp_path / f"lib-{device}.so"),
                        "--store", store])
        err = _one_line_error(code, capsys)
        assert "gemma2 compiles for the cpu device only" in err and "soft-capping" in err
        assert not (tmp_path / f"lib-{device}.so").exists()


def test_phi3_longrope_config_keeps_both_factor_sets_and_the_full_context(models_dir, tmp_path, capsys):
    folder, _ = _converted("phi3", "phi3-longrope-partial", models_dir, tmp_path, capsys)
    chat = json.loads((folder / "mlc-chat-config.json").read_text())
    assert chat["context_window_size"] == 256 and chat["model_config"]["original_max_position_embeddings"] == 64
    scaling = chat["model_config"]["rope_scaling"]
    assert scaling["rope_type"] == "longrope" and abs(scaling["attention_factor"] - 1.1547) < 1e-4
    assert len(scaling["short_factor"]) == len(scaling["long_factor"]) == 6


def test_a_phi3_gguf_with_longrope_factors_is_refused_by_name(tmp_path, capsys):
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "phi3.gguf"), "phi3")
    writer.add_block_count(1)
    writer.add_uint32("phi3.rope.scaling.original_context_length", 4096)
    writer.add_tensor("rope_factors_long.weight", np.ones(8, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    code = cli.run(["convert_weight", str(tmp_path / "phi3.gguf"), "--quantization", "q0f32", "-o",
                    str(tmp_path / "out"), "--store", str(tmp_path / "store")])
    assert "phi3 GGUF files with LongRoPE factors are not read yet" in _one_line_error(code, capsys)
    assert not (tmp_path / "out").exists()


def test_moe_on_a_gpu_device_names_the_cpu_kernels(models_dir, tmp_path, capsys):
    folder, store = _converted("qwen_moe", "qwen3moe-top4-step2", models_dir, tmp_path, capsys)
    code = cli.run(["compile", str(folder), "--device", "cuda", "-o", str(tmp_path / "lib.so"), "--store", store])
    err = _one_line_error(code, capsys)
    assert "qwen3_moe compiles for the cpu device only" in err and "expert matmuls" in err
    assert not (tmp_path / "lib.so").exists()



def test_a_top_k_whose_torch_order_the_router_cannot_follow_is_a_config_error(models_dir, tmp_path, capsys):
    """18 of 32 experts: torch would sort 17 picks with an introsort (compiler/topk.py reproduces up to 16).
    Refused by gen_config, before any work; 18 of 1,152 (partial_sort's range) is not refused."""
    from llmc.families import experts
    from llmc.families.mixtral.tiny import make

    model = make(models_dir / "limits-top-k", experts=4, top_k=2)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "num_local_experts": 32, "num_experts_per_tok": 18}))
    capsys.readouterr()  # transformers' progress while writing the model
    code = cli.run(["gen_config", str(model), "--quantization", "q0f32", "--conv-template", "chatml",
                    "-o", str(tmp_path / "out"), "--store", str(tmp_path / "store")])
    err = _one_line_error(code, capsys)
    assert "num_experts_per_tok=18 is not supported" in err and "at most 17 experts per token" in err
    assert not (tmp_path / "out").exists()
    assert experts.top_k({"num_experts_per_tok": 18}, 18 * 64, "mixtral") == 18
    assert experts.top_k({"num_experts_per_tok": 17}, 32, "mixtral") == 17
