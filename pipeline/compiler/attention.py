"""CPU kernels for the paged KV cache: attention (ragged prefill, paged prefill, paged decode) and RoPE.

TVM's CPU versions of these are plain loops: one query row and one key at a time,
single-threaded RoPE that recomputes pow/cos/sin for every element of every head.
On SmolLM2 they took 38% of a 128-token prefill. These take the same arguments
(the cache calls them by position) and compute the same thing:

- attention is tiled flash-attention style: a tile of TILE query rows against
  blocks of TILE keys, scores vectorized across the query rows, an online
  softmax in base 2 (lse = log2 sum 2^s, TVM's convention, so the cache can merge
  partial states), and the weighted sum of values vectorized across head_dim;
  tasks (head x query tile) run in parallel;
- masks come from absolute positions (q_rope_position, k_rope_pos_offset): causal,
  plus an optional sliding window with attention sinks (a query at p sees keys in
  (p - window, p] and the first `sink` positions, as transformers' Mistral does);
  windowed models keep the ordinary full cache, since TVM's own sliding-window CPU
  paths fail at run time in this build;
- a model whose layers alternate between windowed and full attention (Gemma 2 and 3)
  gets kernels built with `layered=True`: the window then applies only to calls whose
  sm_scale is negative (|sm_scale| is the scale). sm_scale is the one value the cache
  passes from each layer's call to the kernels unchanged, and the kernels are shared
  by all layers, so the layer's kind travels in its sign;
- optional logit soft-capping (Gemma 2): a score s becomes cap * tanh(s / cap) before
  the softmax;
- exp2 is fast_math's polynomial, which vectorizes (LLVM would call exp2f lane by lane);
- RoPE computes each position's cos/sin once and applies them to every head.
"""
from __future__ import annotations

import functools
import math

from tvm import tirx
from tvm.relax.frontend.nn.llm.position_embedding import switch_rope_freq_func
from tvm.script import tirx as T

from llmc.compiler.fast_math import exp2

LOG2E = math.log2(math.e)
NEG = -5e4  # the running max before any key is seen; scores never get near it
MASKED = -1e30
TILE = 16


@T.macro
def _online_softmax_update(s, m, m_new, l_sum, acc, d):
    """Fold a block of masked scores s[key, row] into the running max m, sum l_sum and
    weighted values acc; leaves s holding the block's probabilities (relative to m)."""
    for r in T.vectorized(TILE):
        m_new[r] = m[r]
    for jj in T.serial(TILE):
        for r in T.vectorized(TILE):
            m_new[r] = T.max(m_new[r], s[jj, r])
    for jj in T.serial(TILE):
        for r in T.vectorized(TILE):
            s[jj, r] = exp2(s[jj, r] - m_new[r])
    for r in T.vectorized(TILE):
        m[r] = exp2(m[r] - m_new[r])  # the rescale factor of what came before
        l_sum[r] = l_sum[r] * m[r]
    for r in T.serial(TILE):
        for x in T.vectorized(d):
            acc[r, x] = acc[r, x] * m[r]
    for jj in T.serial(TILE):
        for r in T.vectorized(TILE):
            l_sum[r] = l_sum[r] + s[jj, r]
    for r in T.vectorized(TILE):
        m[r] = m_new[r]


@T.macro
def _start_tile(qt, m, l_sum, acc, q, q0, rows, last_row, h, d, scale):
    """Load the tile's query rows (transposed, pre-scaled into base 2; rows past the end are 0)
    and reset the running softmax state."""
    for x, r in T.grid(d, TILE):
        qt[x, r] = T.if_then_else(r < rows, T.cast(q[T.min(q0 + r, last_row), h, x], "float32")
                                  * scale, T.float32(0))
    for r in T.serial(TILE):
        m[r] = T.float32(NEG)
        l_sum[r] = T.float32(0)
        for x in T.vectorized(d):
            acc[r, x] = T.float32(0)


@T.macro
def _mask_block(s, kb, n_keys, rows, visible, k_pos0, q_rope_position, q0, last_row, capped, sm_scale):
    """Scores of keys past the end, of padding rows and of keys a query may not see -> MASKED;
    the others soft-capped when the model caps them."""
    for jj in T.serial(TILE):
        for r in T.vectorized(TILE):
            s[jj, r] = T.if_then_else(
                kb * TILE + jj < n_keys and r < rows
                and visible(k_pos0 + kb * TILE + jj, q_rope_position[T.min(q0 + r, last_row)], sm_scale),
                capped(s[jj, r]), T.float32(MASKED))


@T.macro
def _finish_tile(output, lse, acc, m, l_sum, q0, rows, h, d, dtype):
    """Normalized outputs and log2-sum-exp2 of the tile's real rows (rows that saw no key: 0, NEG)."""
    for r in T.serial(rows):
        for x in T.vectorized(d):
            output[q0 + r, h, x] = T.cast(T.if_then_else(
                l_sum[r] > T.float32(0), acc[r, x] / l_sum[r], T.float32(0)), dtype)
        lse[q0 + r, h] = T.if_then_else(l_sum[r] > T.float32(0), m[r] + T.log2(l_sum[r]),
                                        T.float32(NEG))


def _visible(window: int, sink: int, layered: bool):
    def visible(k_pos, q_pos, sm_scale):
        if window <= 0:
            return k_pos <= q_pos
        inside = tirx.any(q_pos - k_pos < window, k_pos < sink)
        if layered:  # a full-attention layer calls with a positive sm_scale
            inside = tirx.any(sm_scale > tirx.const(0, "float32"), inside)
        return tirx.all(k_pos <= q_pos, inside)

    return visible


def _scoring(softcap: float):
    """(the factor a query is scaled by, given sm_scale; what a raw score becomes). Scores end in base 2:
    without a cap, log2(e) goes into the query; with one, it follows the tanh."""
    if softcap <= 0:
        return (lambda sm_scale: T.fabs(sm_scale) * T.float32(LOG2E)), (lambda x: x)
    cap = tirx.const(softcap, "float32")
    return (lambda sm_scale: T.fabs(sm_scale)), (lambda x: T.tanh(x / cap) * (cap * T.float32(LOG2E)))


@functools.cache  # parsing TVMScript costs ~0.15 s
def ragged_prefill(h_kv: int, h_q: int, d: int, dtype: str, window: int = 0, sink: int = 0, softcap: float = 0.0,
                   layered: bool = False):
    """Queries of this forward pass against their own keys (causal)."""
    group, visible = h_q // h_kv, _visible(window, sink, layered)
    q_scale, capped = _scoring(softcap)

    @T.prim_func(s_tir=True)
    def attention_prefill_ragged(var_q: T.handle, var_q_indptr: T.handle, var_k: T.handle, var_v: T.handle,
                                 var_kv_indptr: T.handle, var_q_rope_position: T.handle,
                                 var_k_rope_pos_offset: T.handle, var_output: T.handle, var_lse: T.handle,
                                 causal: T.int32, rotary_mode: T.int32, rope_scale: T.float32,
                                 rope_theta: T.float32, sm_scale: T.float32):
        T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True})
        batch_size = T.int32()
        qo_len = T.int32()
        kv_len = T.int32()
        q_indptr_off = T.int32()
        kv_indptr_off = T.int32()
        qpos_off = T.int32()
        kpos_off = T.int32()
        q = T.match_buffer(var_q, (qo_len, h_q, d), dtype)
        q_indptr = T.match_buffer(var_q_indptr, (batch_size + 1,), "int32", elem_offset=q_indptr_off)
        k = T.match_buffer(var_k, (kv_len, h_kv, d), dtype)
        v = T.match_buffer(var_v, (kv_len, h_kv, d), dtype)
        kv_indptr = T.match_buffer(var_kv_indptr, (batch_size + 1,), "int32", elem_offset=kv_indptr_off)
        q_rope_position = T.match_buffer(var_q_rope_position, (qo_len,), "int32", elem_offset=qpos_off)
        k_rope_pos_offset = T.match_buffer(var_k_rope_pos_offset, (batch_size,), "int32", elem_offset=kpos_off)
        output = T.match_buffer(var_output, (qo_len, h_q, d), dtype)
        lse = T.match_buffer(var_lse, (qo_len, h_q), "float32")
        for b in T.serial(batch_size):
            for task in T.parallel(h_q * T.ceildiv(q_indptr[b + 1] - q_indptr[b], TILE)):
                with T.sblock("attn"):
                    T.reads()
                    T.writes()
                    qt = T.sblock_alloc_buffer((d, TILE), "float32", scope="local")
                    s = T.sblock_alloc_buffer((TILE, TILE), "float32", scope="local")
                    acc = T.sblock_alloc_buffer((TILE, d), "float32", scope="local")
                    m = T.sblock_alloc_buffer((TILE,), "float32", scope="local")
                    m_new = T.sblock_alloc_buffer((TILE,), "float32", scope="local")
                    l_sum = T.sblock_alloc_buffer((TILE,), "float32", scope="local")
                    h: T.let[T.int32] = task % h_q
                    q0: T.let[T.int32] = q_indptr[b] + task // h_q * TILE
                    rows: T.let[T.int32] = T.min(TILE, q_indptr[b + 1] - q0)
                    k0: T.let[T.int32] = kv_indptr[b]
                    n_keys: T.let[T.int32] = kv_indptr[b + 1] - k0
                    last_q: T.let[T.int32] = q_rope_position[q0 + rows - 1]
                    # keys past the tile's last query position are masked for every row
                    n_seen: T.let[T.int32] = T.max(0, T.min(n_keys, last_q - k_rope_pos_offset[b] + 1))
                    _start_tile(qt, m, l_sum, acc, q, q0, rows, qo_len - 1, h, d, q_scale(sm_scale))
                    for kb in T.serial(T.ceildiv(n_seen, TILE)):
                        for jj in T.serial(TILE):
                            for r in T.vectorized(TILE):
                                s[jj, r] = T.float32(0)
                            for x in T.serial(d):
                                for r in T.vectorized(TILE):
                                    s[jj, r] = s[jj, r] + qt[x, r] * T.cast(
                                        k[k0 + T.min(kb * TILE + jj, n_keys - 1), h // group, x], "float32")
                        _mask_block(s, kb, n_keys, rows, visible, k_rope_pos_offset[b], q_rope_position, q0,
                                    qo_len - 1, capped, sm_scale)
                        _online_softmax_update(s, m, m_new, l_sum, acc, d)
                        for r in T.serial(TILE):
                            for jj in T.unroll(TILE):
                                for x in T.vectorized(d):
                                    acc[r, x] = acc[r, x] + s[jj, r] * T.cast(
                                        v[k0 + T.min(kb * TILE + jj, n_keys - 1), h // group, x], "float32")
                    _finish_tile(output, lse, acc, m, l_sum, q0, rows, h, d, dtype)

    return attention_prefill_ragged


@functools.cache  # the KV cache asks for each twice (with and without its sliding-window flag)
def paged_prefill(h_kv: int, h_q: int, d: int, dtype: str, window: int = 0, sink: int = 0, softcap: float = 0.0,
                  layered: bool = False, page_size: int = 16):
    """Queries of this forward pass against the keys already in the cache's pages."""
    group, visible = h_q // h_kv, _visible(window, sink, layered)
    q_scale, capped = _scoring(softcap)
    assert page_size == TILE, "a key block is one page"

    @T.prim_func(s_tir=True)
    def attention_prefill_paged(var_q: T.handle, var_q_indptr: T.handle, var_pages: T.handle,
                                var_page_indptr: T.handle, var_page_values: T.handle, var_length_info: T.handle,
                                var_k_rope_pos_offset: T.handle, var_q_rope_position: T.handle,
                                var_output: T.handle, var_lse: T.handle, causal: T.int32, rotary_mode: T.int32,
                                rope_scale: T.float32, rope_theta: T.float32, sm_scale: T.float32):
        T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True})
        batch_size = T.int32()
        total_len = T.int32()
        nnz_pages = T.int32()
        max_num_pages = T.int32()
        q_indptr_off = T.int32()
        page_indptr_off = T.int32()
        page_values_off = T.int32()
        kpos_off = T.int32()
        qpos_off = T.int32()
        length_off = T.int32()
        q = T.match_buffer(var_q, (total_len, h_q, d), dtype)
        q_indptr = T.match_buffer(var_q_indptr, (batch_size + 1,), "int32", elem_offset=q_indptr_off)
        pages = T.match_buffer(var_pages, (max_num_pages, 2, h_kv, page_size, d), dtype)
        page_indptr = T.match_buffer(var_page_indptr, (batch_size + 1,), "int32", elem_offset=page_indptr_off)
        page_values = T.match_buffer(var_page_values, (nnz_pages,), "int32", elem_offset=page_values_off)
        last_page_len = T.match_buffer(var_length_info, (batch_size,), "int32", elem_offset=length_off)
        k_rope_pos_offset = T.match_buffer(var_k_rope_pos_offset, (batch_size,), "int32", elem_offset=kpos_off)
        q_rope_position = T.match_buffer(var_q_rope_position, (total_len,), "int32", elem_offset=qpos_off)
        output = T.match_buffer(var_output, (total_len, h_q, d), dtype)
        lse = T.match_buffer(var_lse, (total_len, h_q), "float32")
        for b in T.serial(batch_size):
            for task in T.parallel(h_q * T.ceildiv(q_indptr[b + 1] - q_indptr[b], TILE)):
                with T.sblock("attn"):
                    T.reads()
                    T.writes()
                    qt = T.sblock_alloc_buffer((d, TILE), "float32", scope="local")
                    s = T.sblock_alloc_buffer((TILE, TILE), "float32", scope="local")
                    acc = T.sblock_alloc_buffer((TILE, d), "float32", scope="local")
                    m = T.sblock_alloc_buffer((TILE,), "float32", scope="local")
                    m_new = T.sblock_alloc_buffer((TILE,), "float32", scope="local")
                    l_sum = T.sblock_alloc_buffer((TILE,), "float32", scope="local")
                    h: T.let[T.int32] = task % h_q
                    q0: T.let[T.int32] = q_indptr[b] + task // h_q * TILE
                    rows: T.let[T.int32] = T.min(TILE, q_indptr[b + 1] - q0)
                    first_page: T.let[T.int32] = page_indptr[b]
                    n_pages: T.let[T.int32] = page_indptr[b + 1] - first_page
                    n_keys: T.let[T.int32] = T.if_then_else(
                        n_pages > 0, (n_pages - 1) * page_size + last_page_len[b], 0)
                    _start_tile(qt, m, l_sum, acc, q, q0, rows, total_len - 1, h, d, q_scale(sm_scale))
                    for kb in T.serial(n_pages):
                        page: T.let[T.int32] = page_values[first_page + kb]
                        for jj in T.serial(TILE):
                            for r in T.vectorized(TILE):
                                s[jj, r] = T.float32(0)
                            for x in T.serial(d):
                                for r in T.vectorized(TILE):
                                    s[jj, r] = s[jj, r] + qt[x, r] * T.cast(
                                        pages[page, 0, h // group, jj, x], "float32")
                        _mask_block(s, kb, n_keys, rows, visible, k_rope_pos_offset[b], q_rope_position, q0,
                                    total_len - 1, capped, sm_scale)
                        _online_softmax_update(s, m, m_new, l_sum, acc, d)
                        for r in T.serial(TILE):
                            for jj in T.unroll(TILE):
                                for x in T.vectorized(d):
                                    acc[r, x] = acc[r, x] + s[jj, r] * T.cast(
                                        pages[page, 1, h // group, T.min(jj, n_keys - kb * TILE - 1), x], "float32")
                    _finish_tile(output, lse, acc, m, l_sum, q0, rows, h, d, dtype)

    return attention_prefill_paged


@functools.cache  # the KV cache asks for each twice (with and without its sliding-window flag)
def paged_decode(h_kv: int, h_q: int, d: int, dtype: str, window: int = 0, sink: int = 0, softcap: float = 0.0,
                 layered: bool = False, page_size: int = 16):
    """One query per sequence against its cached keys; a task per (sequence, head)."""
    group, visible = h_q // h_kv, _visible(window, sink, layered)
    q_scale, capped = _scoring(softcap)
    lanes = math.gcd(d, TILE)

    @T.prim_func(s_tir=True)
    def attention_decode_paged(q_handle: T.handle, pages_handle: T.handle, page_indptr_handle: T.handle,
                               page_values_handle: T.handle, var_length_info: T.handle,
                               k_rope_pos_offset_handle: T.handle, q_rope_position_handle: T.handle,
                               output_handle: T.handle, lse_handle: T.handle, rotary_mode: T.int32,
                               rope_scale: T.float32, rope_theta: T.float32, sm_scale: T.float32):
        T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True})
        B = T.int32()
        nnz_pages = T.int32()
        max_num_pages = T.int32()
        page_indptr_off = T.int32()
        page_values_off = T.int32()
        kpos_off = T.int32()
        qpos_off = T.int32()
        length_off = T.int32()
        q = T.match_buffer(q_handle, (B, h_q, d), dtype)
        pages = T.match_buffer(pages_handle, (max_num_pages, 2, h_kv, page_size, d), dtype)
        page_indptr = T.match_buffer(page_indptr_handle, (B + 1,), "int32", elem_offset=page_indptr_off)
        page_values = T.match_buffer(page_values_handle, (nnz_pages,), "int32", elem_offset=page_values_off)
        last_page_len = T.match_buffer(var_length_info, (B,), "int32", elem_offset=length_off)
        k_rope_pos_offset = T.match_buffer(k_rope_pos_offset_handle, (B,), "int32", elem_offset=kpos_off)
        q_rope_position = T.match_buffer(q_rope_position_handle, (B,), "int32", elem_offset=qpos_off)
        output = T.match_buffer(output_handle, (B, h_q, d), dtype)
        lse = T.match_buffer(lse_handle, (B, h_q), "float32")
        for task in T.parallel(B * h_q):
            with T.sblock("attn"):
                T.reads()
                T.writes()
                qv = T.sblock_alloc_buffer((d,), "float32", scope="local")
                part = T.sblock_alloc_buffer((lanes,), "float32", scope="local")
                s = T.sblock_alloc_buffer((page_size,), "float32", scope="local")
                acc = T.sblock_alloc_buffer((d,), "float32", scope="local")
                state = T.sblock_alloc_buffer((4,), "float32", scope="local")  # max, sum, new max, rescale
                b: T.let[T.int32] = task // h_q
                h: T.let[T.int32] = task % h_q
                first_page: T.let[T.int32] = page_indptr[b]
                n_pages: T.let[T.int32] = page_indptr[b + 1] - first_page
                n_keys: T.let[T.int32] = T.if_then_else(n_pages > 0, (n_pages - 1) * page_size + last_page_len[b], 0)
                for x in T.vectorized(d):
                    qv[x] = T.cast(q[b, h, x], "float32") * q_scale(sm_scale)
                    acc[x] = T.float32(0)
                state[0] = T.float32(NEG)
                state[1] = T.float32(0)
                for kb in T.serial(n_pages):
                    page: T.let[T.int32] = page_values[first_page + kb]
                    for jj in T.serial(page_size):
                        for i in T.vectorized(lanes):
                            part[i] = T.float32(0)
                        for xo in T.serial(d // lanes):
                            for i in T.vectorized(lanes):
                                part[i] = part[i] + qv[xo * lanes + i] * T.cast(
                                    pages[page, 0, h // group, jj, xo * lanes + i], "float32")
                        s[jj] = T.float32(0)
                        for i in T.serial(lanes):
                            s[jj] = s[jj] + part[i]
                        s[jj] = T.if_then_else(kb * page_size + jj < n_keys and visible(
                            k_rope_pos_offset[b] + kb * page_size + jj, q_rope_position[b], sm_scale),
                            capped(s[jj]), T.float32(MASKED))
                    state[2] = state[0]
                    for jj in T.serial(page_size):
                        state[2] = T.max(state[2], s[jj])
                    for jj in T.vectorized(page_size):
                        s[jj] = exp2(s[jj] - state[2])
                    state[3] = exp2(state[0] - state[2])
                    state[1] = state[1] * state[3]
                    for jj in T.serial(page_size):
                        state[1] = state[1] + s[jj]
                    for x in T.vectorized(d):
                        acc[x] = acc[x] * state[3]
                    for jj in T.unroll(page_size):
                        for x in T.vectorized(d):
                            acc[x] = acc[x] + s[jj] * T.cast(  # past the last key: uninitialized, maybe NaN
                                pages[page, 1, h // group, T.min(jj, n_keys - kb * page_size - 1), x], "float32")
                    state[0] = state[2]
                for x in T.vectorized(d):
                    output[b, h, x] = T.cast(T.if_then_else(state[1] > T.float32(0), acc[x] / state[1],
                                                            T.float32(0)), dtype)
                lse[b, h] = T.if_then_else(state[1] > T.float32(0), state[0] + T.log2(state[1]), T.float32(NEG))

    return attention_decode_paged


def rope(theta: float, scale: float, head_dim: int, h_q: int, h_kv: int, dtype: str, rope_scaling: dict,
         rotary_dim: int | None = None):
    """Split fused qkv into q, k, v with rotary embedding on q and k (TVM's tir_split_rotary), with
    each position's cos/sin computed once (by TVM's own frequency functions) for all heads."""
    rotary_dim = rotary_dim or head_dim
    half = rotary_dim // 2
    fused = h_q + 2 * h_kv
    freq = switch_rope_freq_func(rope_scaling)
    gptj = rope_scaling.get("rope_type") == "gptj"

    def cos_sin(pos, d):
        c, s, lets = freq(pos * tirx.const(scale, "float32"), d, rotary_dim, theta, "float32")
        for var, value in lets.items():
            c, s = tirx.Let(var, value, c), tirx.Let(var, value, s)
        return c, s

    def partner(x, row, h, d):
        if gptj:
            return T.if_then_else(d % 2 == 0, -x[row, h, T.min(d + 1, head_dim - 1)], x[row, h, T.max(d - 1, 0)])
        return T.if_then_else(d < half, -x[row, h, T.min(d + half, head_dim - 1)], x[row, h, T.max(d - half, 0)])

    def rotated(x, cos, sin, row, h, d):
        at = T.min(d, rotary_dim - 1)
        return T.cast(cos[at] * T.cast(x[row, h, d], "float32") + sin[at] * T.cast(partner(x, row, h, d), "float32"),
                      dtype)

    @T.prim_func(s_tir=True)
    def split_rotary(var_qkv: T.handle, var_position_map: T.handle, var_q: T.handle, var_k: T.handle,
                     var_v: T.handle, apply_rope: T.int64):
        T.func_attr({"op_pattern": 8, "tirx.noalias": True, "tirx.is_scheduled": True})
        seq_len = T.int32()
        position_map_elem_offset = T.int32()
        qkv = T.match_buffer(var_qkv, (seq_len, fused, head_dim), dtype)
        q = T.match_buffer(var_q, (seq_len, h_q, head_dim), dtype)
        k = T.match_buffer(var_k, (seq_len, h_kv, head_dim), dtype)
        v = T.match_buffer(var_v, (seq_len, h_kv, head_dim), dtype)
        position_map = T.match_buffer(var_position_map, (seq_len,), "int32", elem_offset=position_map_elem_offset)
        for row in T.parallel(seq_len):
            with T.sblock("rope"):
                T.reads()
                T.writes()
                cos = T.sblock_alloc_buffer((rotary_dim,), "float32", scope="local")
                sin = T.sblock_alloc_buffer((rotary_dim,), "float32", scope="local")
                for d in T.serial(rotary_dim):
                    cos[d] = cos_sin(T.cast(position_map[row], "float32"), d)[0]
                    sin[d] = cos_sin(T.cast(position_map[row], "float32"), d)[1]
                for h, d in T.grid(h_q + h_kv, head_dim):
                    if apply_rope > 0 and d < rotary_dim:
                        if h < h_q:
                            q[row, h, d] = rotated(qkv, cos, sin, row, h, d)
                        else:
                            k[row, h - h_q, d] = rotated(qkv, cos, sin, row, h, d)
                    elif h < h_q:
                        q[row, h, d] = qkv[row, h, d]
                    else:
                        k[row, h - h_q, d] = qkv[row, h, d]
                for h, d in T.grid(h_kv, head_dim):
                    v[row, h, d] = qkv[row, h_q + h_kv + h, d]

    return split_rotary
