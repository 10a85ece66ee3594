"""llmc's CPU attention and RoPE kernels against numpy and TVM's own RoPE kernel, one kernel at a time."""
from __future__ import annotations

import math

import numpy as np
import pytest

from llmc.compiler import attention

H_Q, H_KV, D, PAGE = 4, 2, 16, 16
SM_SCALE = 1 / math.sqrt(D)


@pytest.fixture(scope="module")
def compile_kernel():
    import tvm

    from llmc import devices as targets

    target = tvm.target.Target(targets.resolve("cpu", None, None).target)
    return lambda func: tvm.compile(tvm.IRModule({"main": func}), target)


def tensor(a):
    import tvm

    return tvm.runtime.tensor(np.ascontiguousarray(a), tvm.cpu())


def reference(q, k, v, q_pos, k_pos, window=0, sink=0):
    """Softmax attention in float64 with TVM's base-2 log-sum-exp."""
    group = q.shape[1] // k.shape[1]
    out = np.zeros(q.shape, np.float64)
    lse = np.zeros(q.shape[:2], np.float64)
    for i in range(q.shape[0]):
        visible = k_pos <= q_pos[i]
        if window:
            visible &= ((q_pos[i] - k_pos) < window) | (k_pos < sink)
        if not visible.any():  # the kernels' convention for "nothing to attend to": 0 output, lse -5e4
            lse[i] = attention.NEG
            continue
        for h in range(q.shape[1]):
            s = np.where(visible, k[:, h // group] @ q[i, h] * SM_SCALE * math.log2(math.e), -np.inf)
            p = np.exp2(s - s.max())
            out[i, h] = p @ v[:, h // group] / p.sum()
            lse[i, h] = s.max() + np.log2(p.sum())
    return out, lse


def paged(k, v):
    """The cache's page layout [page, k/v, head, slot, d]: page 0 unused, pages in reverse order,
    unused slots NaN."""
    n_pages = max(1, -(-len(k) // PAGE))
    pages = np.full((n_pages + 1, 2, H_KV, PAGE, D), np.nan, np.float32)
    ids = np.arange(n_pages, dtype=np.int32)[::-1] + 1
    for j in range(len(k)):
        pages[ids[j // PAGE], 0, :, j % PAGE] = k[j]
        pages[ids[j // PAGE], 1, :, j % PAGE] = v[j]
    return pages, ids.copy(), len(k) - (n_pages - 1) * PAGE


def random_qkv(n_q, n_k, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_q, H_Q, D)).astype(np.float32),
            rng.standard_normal((n_k, H_KV, D)).astype(np.float32),
            rng.standard_normal((n_k, H_KV, D)).astype(np.float32))


def check(out, lse, want_out, want_lse):
    np.testing.assert_allclose(out.numpy(), want_out, atol=2e-6)
    np.testing.assert_allclose(lse.numpy(), want_lse, atol=2e-6)


@pytest.mark.parametrize("n,window,sink", [(1, 0, 0), (16, 0, 0), (37, 0, 0), (37, 8, 0), (37, 8, 2)])
def test_ragged_prefill_is_causal_softmax_attention(compile_kernel, n, window, sink):
    kernel = compile_kernel(attention.ragged_prefill(H_KV, H_Q, D, "float32", window, sink))
    q, k, v = random_qkv(n, n, n)
    out, lse = tensor(np.zeros_like(q)), tensor(np.zeros((n, H_Q), np.float32))
    indptr, pos = np.array([0, n], np.int32), np.arange(n, dtype=np.int32)
    kernel(tensor(q), tensor(indptr), tensor(k), tensor(v), tensor(indptr), tensor(pos),
           tensor(np.zeros(1, np.int32)), out, lse, 1, 0, 1.0, 1e4, SM_SCALE)
    check(out, lse, *reference(q, k, v, pos, pos, window, sink))


@pytest.mark.parametrize("n_q,n_k,window", [(1, 7, 0), (5, 16, 0), (20, 40, 0), (20, 40, 12)])
def test_paged_prefill_reads_only_filled_slots(compile_kernel, n_q, n_k, window):
    kernel = compile_kernel(attention.paged_prefill(H_KV, H_Q, D, "float32", window, 0))
    q, k, v = random_qkv(n_q, n_k, n_k)
    pages, ids, last = paged(k, v)
    out, lse = tensor(np.zeros_like(q)), tensor(np.zeros((n_q, H_Q), np.float32))
    q_pos = np.arange(n_k, n_k + n_q, dtype=np.int32)
    kernel(tensor(q), tensor(np.array([0, n_q], np.int32)), tensor(pages), tensor(np.array([0, len(ids)], np.int32)),
           tensor(ids), tensor(np.array([last], np.int32)), tensor(np.zeros(1, np.int32)), tensor(q_pos),
           out, lse, 0, 0, 1.0, 1e4, SM_SCALE)
    check(out, lse, *reference(q, k, v, q_pos, np.arange(n_k), window))


@pytest.mark.parametrize("lengths", [(1,), (16,), (7, 40), (33, 5, 17)])
def test_paged_decode_batches_sequences(compile_kernel, lengths):
    kernel = compile_kernel(attention.paged_decode(H_KV, H_Q, D, "float32"))
    seqs = [random_qkv(1, n, i) for i, n in enumerate(lengths)]
    layouts = [paged(k, v) for _, k, v in seqs]
    pages = np.concatenate([p for p, _, _ in layouts])
    ids, indptr, start = [], [0], 0
    for p, i, _ in layouts:
        ids.extend(i + start)
        start += len(p)
        indptr.append(len(ids))
    q = np.concatenate([s[0] for s in seqs])
    out, lse = tensor(np.zeros_like(q)), tensor(np.zeros((len(lengths), H_Q), np.float32))
    kernel(tensor(q), tensor(pages), tensor(np.array(indptr, np.int32)), tensor(np.array(ids, np.int32)),
           tensor(np.array([last for _, _, last in layouts], np.int32)), tensor(np.zeros(len(lengths), np.int32)),
           tensor(np.array([n - 1 for n in lengths], np.int32)), out, lse, 0, 1.0, 1e4, SM_SCALE)
    want = [reference(s[0], s[1], s[2], np.array([n - 1]), np.arange(n)) for s, n in zip(seqs, lengths)]
    check(out, lse, np.concatenate([w[0] for w in want]), np.concatenate([w[1] for w in want]))


@pytest.mark.parametrize("scaling,rotary_dim", [({}, None), ({"rope_type": "gptj"}, None), ({}, 8),
                                                ({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                                                 None)])
def test_rope_matches_tvms_kernel(compile_kernel, scaling, rotary_dim):
    from tvm.relax.frontend.nn.llm.position_embedding import llama_rope_with_position_map

    n = 37
    qkv = np.random.default_rng(1).standard_normal((n, H_Q + 2 * H_KV, D)).astype(np.float32)
    outputs = []
    for make in (attention.rope, llama_rope_with_position_map):
        kernel = compile_kernel(make(1e4, 1.0, D, H_Q, H_KV, "float32", scaling, rotary_dim))
        q, k, v = (tensor(np.zeros((n, h, D), np.float32)) for h in (H_Q, H_KV, H_KV))
        kernel(tensor(qkv), tensor(np.arange(100, 100 + n, dtype=np.int32)), q, k, v, 1)
        outputs.append([t.numpy() for t in (q, k, v)])
    for ours, theirs in zip(*outputs):
        np.testing.assert_array_equal(ours, theirs)
