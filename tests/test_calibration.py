"""convert_weight --calibration-text: activation statistics weigh the search, and reach the layer outputs."""
import numpy as np
import pytest

from llmc import cli
from llmc.commands.convert_weight import convert_weight, quality_report
from weights_io import dequantize_group, fused, hf_state, read_params

TEXT = ("The capital of France is Paris. What is the answer? The quick brown fox jumps over the lazy dog. "
        "Hello world! 0123456789 ") * 12


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calibration") / "text.txt"
    path.write_text(TEXT)
    return path


def layer_inputs(model_dir, text: str) -> dict[str, np.ndarray]:
    """Every linear layer's input rows over the text, from transformers (collected here, not by llmc)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = AutoTokenizer.from_pretrained(model_dir)(text)["input_ids"]
    rows: dict[str, list] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, a, name=name: rows.setdefault(name, []).append(
        a[0].reshape(-1, a[0].shape[-1]).double().numpy())) for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    return {name: np.concatenate(parts) for name, parts in rows.items()}


def output_error(folder, state, inputs, name) -> float:
    """|| X (W - W_q)^T ||^2: how far the layer's outputs on the calibration text move."""
    params = read_params(folder)
    base = name[: -len(".weight")]
    w = fused(state, name).astype(np.float64)
    deq = dequantize_group(params[base + ".q_weight"], params[base + ".q_scale"], 4, 32, w.shape[1])
    x = inputs[_module(base)]
    return float(np.square(x @ (w - deq).T).sum())


def _module(base: str) -> str:
    """The transformers module whose input a (possibly fused) MLC parameter sees."""
    stem, last = base.rsplit(".", 1)
    return f"{stem}.{ {'qkv_proj': 'q_proj', 'gate_up_proj': 'gate_proj'}.get(last, last)}"


def test_calibrated_codes_move_the_layer_outputs_less(tiny_llama, session_store, tmp_path, calibration_file):
    plain = convert_weight(str(tiny_llama), "q4f16_1", tmp_path / "plain", session_store)
    calibrated = convert_weight(str(tiny_llama), "q4f16_1", tmp_path / "calibrated", session_store,
                                calibration_text=str(calibration_file))
    assert quality_report(session_store, calibrated.manifest)["calibrated"] is True
    assert quality_report(session_store, plain.manifest)["calibrated"] is False
    assert "calibrated" in calibrated.messages[0]
    state, inputs = hf_state(tiny_llama), layer_inputs(tiny_llama, TEXT)
    names = [f"model.layers.{i}.{n}.weight" for i in range(2)
             for n in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")]
    before = sum(output_error(tmp_path / "plain", state, inputs, n) for n in names)
    after = sum(output_error(tmp_path / "calibrated", state, inputs, n) for n in names)
    assert after < before


@pytest.mark.parametrize("args,words", [
    (["--quantization", "q4f16_1", "--quantization-mode", "mlc", "--calibration-text", "{text}"], "needs"),
    (["--quantization", "q0f32", "--calibration-text", "{text}"], "q3/q4"),
    (["--quantization", "q4f16_1", "--calibration-text", "{missing}"], "is not a file"),
    (["--quantization", "q4f16_1", "--quantization-mode", "best"], "--quantization-mode"),
])
def test_bad_calibration_requests_are_one_line_errors(tiny_llama, tmp_path, calibration_file, capsys, args, words):
    args = [a.format(text=calibration_file, missing=tmp_path / "nope.txt") for a in args]
    code = cli.run(["convert_weight", str(tiny_llama), *args, "-o", str(tmp_path / "out"),
                     "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
