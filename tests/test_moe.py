"""Mixture of experts: the router kernel against torch's softmax + top-k, a block where one expert takes every
token, each family's quantized library against transformers on the dequantized weights, and the errors of
what is not built. (q0f32 parity of every MoE variant is test_compile_correctness's, through the families'
VARIANTS.)"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tvm
from tvm.relax.frontend import nn

from compiled import build, hf_greedy, library, rel_error, run_teacher_forced
from test_compile_quantized import HEAD, SCHEMES, hf_with, unfuse
from weights_io import dequantize_group, read_params

from llmc import devices as targets
from llmc.compiler import moe
from llmc.quant import scheme

TARGET = tvm.target.Target(targets.resolve("cpu", None, None).target)


def tensor(a):
    return tvm.runtime.tensor(np.ascontiguousarray(a), tvm.cpu())


def route(logits: np.ndarray, top_k: int, renormalize: bool) -> tuple[np.ndarray, np.ndarray]:
    func = moe.router(logits.shape[1], top_k, renormalize).with_attr("global_symbol", "main")
    run = tvm.compile(tvm.IRModule({"main": func}), TARGET)
    weights, experts = tensor(np.zeros((len(logits), top_k), np.float32)), tensor(np.zeros((len(logits), top_k), np.int32))
    run(tensor(logits.astype(np.float32)), weights, experts)
    return weights.numpy(), experts.numpy()


@pytest.mark.parametrize("num_experts,top_k,renormalize", [(8, 2, True), (60, 4, False), (128, 8, True), (5, 1, False)])
def test_router_matches_torch_softmax_topk(num_experts, top_k, renormalize):
    import torch

    logits = np.random.default_rng(num_experts).normal(0, 2, (37, num_experts)).astype(np.float32)
    weights, experts = route(logits, top_k, renormalize)
    probs = torch.softmax(torch.from_numpy(logits), dim=-1)
    ref_w, ref_e = torch.topk(probs, top_k, dim=-1)
    if renormalize:
        ref_w = ref_w / ref_w.sum(-1, keepdim=True)
    np.testing.assert_array_equal(experts, ref_e.numpy())
    np.testing.assert_allclose(weights, ref_w.numpy(), rtol=2e-6, atol=1e-7)


# A row that sends libstdc++'s introselect to its depth limit (its heap-select fallback), with ties.
DEPTH_LIMIT_ROW = [5, 5, 4, 1, 4, 1, 6, 0, 2, 3, 2, 3, 6, 0]


@pytest.mark.parametrize("num_experts,top_k", [(8, 2), (14, 8), (60, 4), (128, 8), (128, 2), (64, 1)])
def test_router_ties_pick_the_experts_torch_picks(num_experts, top_k):
    """Rows full of equal probabilities (few distinct logits, all-equal rows, a NaN): the same experts, in the
    same order, as CPU torch.topk, through its nth_element path and (k * 64 <= E) its partial_sort path."""
    import torch
    rng = np.random.default_rng(num_experts * 100 + top_k)
    rows = [rng.integers(0, rng.integers(1, 5), num_experts).astype(np.float32) for _ in range(60)]
    rows += [np.zeros(num_experts), np.full(num_experts, 3.0)]
    rows[5][rng.integers(0, num_experts)] = np.nan
    if num_experts == len(DEPTH_LIMIT_ROW):
        rows.append(np.array(DEPTH_LIMIT_ROW))
    logits = np.stack(rows).astype(np.float32)
    weights, experts = route(logits, top_k, True)
    ref_w, ref_e = torch.topk(torch.softmax(torch.from_numpy(logits), dim=-1), top_k, dim=-1)
    np.testing.assert_array_equal(experts, ref_e.numpy())
    ref_w = ref_w / ref_w.sum(-1, keepdim=True)
    np.testing.assert_allclose(weights, ref_w.numpy(), rtol=2e-6, atol=1e-7)  # NaN where torch has NaN
    assert len(set(experts[0].tolist())) == top_k


def test_router_refuses_a_top_k_torch_sorts_another_way():
    with pytest.raises(ValueError, match="at most 17 experts"):
        moe.router(40, 18, True)
    with pytest.raises(ValueError, match="between 1 and the number of experts"):
        moe.router(4, 5, True)


class _Block(nn.Module):
    def __init__(self, cfg, s):
        self.mlp = moe.SparseMoE(cfg, s, "float32")

    def forward(self, x):
        return self.mlp(x)


def test_one_expert_takes_every_token_and_the_others_none():
    """A router that sends all 12 tokens of a prefill to expert 2 (top-1): every row equals expert 2's MLP,
    and the unrouted experts' weights (NaN here) are never read."""
    h, inter, e, t = 32, 24, 4, 12
    cfg = {"hidden_size": h, "moe_intermediate_size": inter, "num_experts": e, "num_experts_per_tok": 1,
           "norm_topk_prob": False}
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(0, 1, (t, h))).astype(np.float32) + 0.1
    gate = np.zeros((e, h), np.float32)
    gate[2] = 1.0  # positive inputs: expert 2's logit is the largest for every token
    gate_up = np.full((e, 2 * inter, h), np.nan, np.float32)
    down = np.full((e, h, inter), np.nan, np.float32)
    gate_up[2] = rng.normal(0, 0.2, (2 * inter, h))
    down[2] = rng.normal(0, 0.2, (h, inter))
    mod, specs = _Block(cfg, scheme("q0f32")).export_tvm({"forward": {"x": nn.spec.Tensor(["t", h], "float32")}})
    run = tvm.relax.VirtualMachine(tvm.compile(mod, TARGET), tvm.cpu())
    params = {"mlp.gate.weight": gate, "mlp.moe_gate_up_proj.weight": gate_up, "mlp.moe_down_proj.weight": down}
    out = run["forward"](tensor(x), *[tensor(params[name]) for name, _ in specs]).numpy()
    g, u = np.split(x @ gate_up[2].T, 2, axis=-1)
    probs = np.exp(x @ gate.T - (x @ gate.T).max(-1, keepdims=True))
    weight = (probs / probs.sum(-1, keepdims=True))[:, 2:3]
    np.testing.assert_allclose(out, weight * ((g / (1 + np.exp(-g)) * u) @ down[2].T), rtol=1e-5, atol=1e-6)


QUANTIZED = [  # (family, variant, quantization): the three families, then every other scheme on one of them
    ("mixtral", "mixtral-top2", "q4f16_1"), ("qwen_moe", "qwen2moe-shared-dense", "q3f16_1"),
    ("qwen_moe", "qwen3moe-top4-step2", "q4f32_1"),
    *[("qwen_moe", "qwen3moe-top4-step2", q) for q in ("q0f16", "q4f16_0", "q3f16_0", "q4f16_2", "q3f16_1h8")],
]


def _dequantized(folder, quant: str, cfg: dict) -> dict[str, np.ndarray]:
    """The library's weights as transformers names them in memory (stacked experts, gate then up)."""
    bits, group, layout = SCHEMES[quant]
    params = read_params(folder)
    hidden = cfg["hidden_size"]
    inter = cfg.get("moe_intermediate_size", cfg["intermediate_size"])
    state = {}
    for name, arr in params.items():
        if name.endswith(".q_scale"):
            continue
        base = name.rsplit(".", 1)[0]
        gate_up = base.endswith(("e1_e3", "moe_gate_up_proj"))
        if arr.ndim == 3:  # stacked experts (NK per expert in every layout), quantized or float
            k = hidden if gate_up else inter
            if name.endswith(".q_weight"):
                scale = params[base + ".q_scale"]
                arr = dequantize_group(arr.reshape(-1, arr.shape[-1]), scale.reshape(-1, scale.shape[-1]), bits,
                                       group, k).reshape(arr.shape[0], arr.shape[1], k)
            layer = base.split(".moe.")[0].split(".mlp.")[0]
            state[f"{layer}.mlp.experts.{'gate_up_proj' if gate_up else 'down_proj'}"] = arr.astype(np.float32)
        elif name.endswith(".q_weight"):
            head = "embed_tokens" in base or "lm_head" in base
            b, g = HEAD[quant] if head and quant in HEAD else (bits, group)
            lay = "NK" if "embed_tokens" in base or (head and quant in HEAD) else layout
            k = hidden if head else _in_features(base, cfg)
            w = dequantize_group(arr, params[base + ".q_scale"], b, g, k, lay)
            state.update(unfuse(base + ".weight", w.astype(np.float32), cfg))
        else:
            state.update(unfuse(name.replace(".moe.gate.", ".mlp.gate."), arr.astype(np.float32), cfg))
    return state


def _in_features(base: str, cfg: dict) -> int:
    if base.endswith("shared_expert.down_proj"):
        return cfg["shared_expert_intermediate_size"]
    if base.endswith("down_proj"):
        return cfg["intermediate_size"]
    if base.endswith("o_proj"):
        return cfg["num_attention_heads"] * cfg["head_dim"]
    return cfg["hidden_size"]


@pytest.mark.parametrize("family,variant,quant", QUANTIZED, ids=[f"{v}-{q}" for _, v, q in QUANTIZED])
def test_quantized_moe_matches_dequantized_transformers(family, variant, quant, models_dir, session_store,
                                                        tmp_path_factory):
    from llmc import families

    tiny = families.tiny_module(getattr(families, family))
    model_dir = tiny.make(models_dir / f"moe-{variant}", **tiny.VARIANTS[variant])
    folder = build(model_dir, quant, tmp_path_factory.mktemp(variant) / "out", session_store, prefill_chunk_size=8)
    cfg = json.loads((folder / "mlc-chat-config.json").read_text())["model_config"]
    prompt = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31, 64, 9, 150, 270]
    greedy, ref = hf_greedy(hf_with(model_dir, _dequantized(folder, quant, cfg)), prompt, 8)
    ours = run_teacher_forced(library(folder), prompt, greedy)
    errors = [rel_error(a, b) for a, b in zip(ours, ref)]
    assert max(errors) <= 1e-4, errors
    assert [int(np.argmax(a)) for a in ours] == [int(np.argmax(b)) for b in ref]


def _in_memory(state: dict[str, np.ndarray], cfg: dict) -> dict[str, np.ndarray]:
    """Checkpoint names (one tensor per expert, mixtral's block_sparse_moe) -> transformers' in-memory ones."""
    out, stacks = {}, {}
    for name, w in state.items():
        name = name.replace(".block_sparse_moe.gate.", ".mlp.gate.")
        if ".experts." not in name:
            out[name] = w
            continue
        layer, rest = name.split(".block_sparse_moe.experts." if "block_sparse_moe" in name else ".mlp.experts.")
        e, kind = rest.split(".")[:2]
        stacks.setdefault(layer, {}).setdefault(int(e), {})[{"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}
                                                             .get(kind, kind)] = w
    for layer, per_expert in stacks.items():
        order = sorted(per_expert)
        out[f"{layer}.mlp.experts.gate_up_proj"] = np.stack(
            [np.concatenate([per_expert[e]["gate_proj"], per_expert[e]["up_proj"]]) for e in order])
        out[f"{layer}.mlp.experts.down_proj"] = np.stack([per_expert[e]["down_proj"] for e in order])
    return out


@pytest.mark.parametrize("family,variant,arch,qtype", [
    ("mixtral", "mixtral-top2", "llama", "Q8_0"),            # llama.cpp's Mixtral: a llama file with experts
    ("qwen_moe", "qwen2moe-shared-dense", "qwen2moe", "F16"),  # the shared expert's gate stored as a vector
    ("qwen_moe", "qwen3moe-top4-step2", "qwen3moe", "Q4_0"),   # (expert rows of whole 32-blocks below)
])
def test_moe_gguf_matches_transformers(family, variant, arch, qtype, models_dir, session_store, tmp_path_factory):
    """A GGUF written as llama.cpp writes one (experts stacked in ffn_*_exps), read by llmc; transformers runs
    the values the file holds."""
    from llmc import families
    from llmc.families.tiny import write_gguf

    tiny = families.tiny_module(getattr(families, family))
    spec = {**tiny.VARIANTS[variant], "mlp_only_layers": (), "sparse_step": 1, "moe_inter": 64} \
        if family == "qwen_moe" else tiny.VARIANTS[variant]  # llama.cpp's qwen MoE graphs have no dense layers
    model_dir = tiny.make(models_dir / f"moe-gguf-{variant}", **spec)
    where = tmp_path_factory.mktemp(f"moe-gguf-{variant}")
    held = write_gguf(model_dir, where / "model.gguf", arch, qtype)
    folder = build(where / "model.gguf", "q0f32", where / "out", session_store, prefill_chunk_size=8)
    cfg = json.loads((folder / "mlc-chat-config.json").read_text())["model_config"]
    prompt = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31, 64, 9, 150, 270]
    state = _in_memory({k: v.astype(np.float32) for k, v in held.items()}, cfg)
    greedy, ref = hf_greedy(hf_with(model_dir, state), prompt, 8)
    ours = run_teacher_forced(library(folder), prompt, greedy)
    errors = [rel_error(a, b) for a, b in zip(ours, ref)]
    assert max(errors) <= 1e-4, errors


def test_batch_decode_groups_tokens_by_expert_and_matches_one_at_a_time(models_dir, session_store, tmp_path_factory):
    """batch_decode (tokens grouped by expert, each expert's weights read once per step) against decode of
    each sequence alone (one GEMV per routed expert)."""
    from llmc.families import qwen_moe, tiny_module

    tiny = tiny_module(qwen_moe)
    model = tiny.make(models_dir / "qwen2moe-shared-dense", **tiny.VARIANTS["qwen2moe-shared-dense"])
    folder = build(model, "q0f32", tmp_path_factory.mktemp("moe-batch") / "out", session_store, prefill_chunk_size=8)
    lib = library(folder)
    prompts = [[5, 17, 42, 99], [3, 250, 7], [88, 123, 200, 31, 64]]
    alone = []
    for seq, prompt in enumerate(prompts):
        kv = lib.create_kv_cache(1, 256)
        lib.add_sequence(kv, 0)
        lib.prefill(kv, 0, prompt)
        alone.append(lib.decode(kv, [0], [11 + seq])[0])
    kv = lib.create_kv_cache(len(prompts), 256)
    for seq, prompt in enumerate(prompts):
        lib.add_sequence(kv, seq)
        lib.prefill(kv, seq, prompt)
    batched = lib.decode(kv, [0, 1, 2], [11, 12, 13])
    for a, b in zip(batched, alone):
        assert rel_error(a, b) <= 1e-5


@pytest.mark.skipif(not __import__("llmc.compiler.int8_matmul", fromlist=["x"]).dot_instruction(TARGET),
                    reason="this CPU has neither AVX2 nor VNNI (the int8 kernels need one)")
def test_default_opt_decodes_experts_with_int8_activations(models_dir, session_store, tmp_path_factory):
    """At O2 the routed experts' decode GEMVs take int8 activations (as the dense layers do): close to the
    exact O1 library, and not equal to it (equal would mean the int8 expert kernel never ran)."""
    from llmc.families import qwen_moe, tiny_module

    tiny = tiny_module(qwen_moe)
    model = tiny.make(models_dir / "moe-int8", **{**tiny.VARIANTS["qwen3moe-top4-step2"], "moe_inter": 64})
    out = tmp_path_factory.mktemp("moe-o2") / "out"
    build(model, "q4f32_1", out, session_store, lib_name="lib-O1.so", opt="O1", prefill_chunk_size=8)
    build(model, "q4f32_1", out, session_store, lib_name="lib-O2.so", opt="O2", prefill_chunk_size=8)
    steps = list(range(30, 300, 9))
    prompt = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31, 64, 9, 150, 270]
    exact, fast = (run_teacher_forced(library(out, name), prompt, steps) for name in ("lib-O1.so", "lib-O2.so"))
    cosines = [float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(exact, fast)]
    assert min(cosines) > 0.999, cosines
    assert np.mean([np.argmax(a) == np.argmax(b) for a, b in zip(exact, fast)]) >= 0.8
    assert max(np.abs(a - b).max() for a, b in zip(exact, fast)) > 1e-5
