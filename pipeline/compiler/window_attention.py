"""Sliding-window attention kernels for the CPU paged KV cache, masked by absolute position,
with optional attention sinks (the first `sink` positions stay visible).

TVM's paged KV cache implements sliding windows StreamingLLM-style (evicting
pages, RoPE applied in the kernel at cache-relative positions), and on the CPU
both of its sliding-window paths fail at run time in this build. Mistral as
transformers computes it keeps every key and lets a query at position p see
keys at positions (p - window, p] (plus the sinks, if any). So windowed models keep the ordinary full
cache and swap these kernels in for TVM's three CPU attention kernels; they
take the same arguments and mask by the absolute positions the cache already
passes (q_rope_position, k_rope_pos_offset).

Each kernel is a plain two-pass softmax per (sequence, query, head), in base 2
like TVM's (lse = log2 sum 2^s) so the cache can merge partial states.
"""
from __future__ import annotations

import math

from tvm.script import tirx as T

LOG2E = math.log2(math.e)
NEG = -5e4


def ragged_prefill(h_kv: int, h_q: int, d: int, dtype: str, window: int, sink: int):
    group = h_q // h_kv

    @T.prim_func(s_tir=True)
    def window_prefill_ragged(var_q: T.handle, var_q_indptr: T.handle, var_k: T.handle, var_v: T.handle,
                              var_kv_indptr: T.handle, var_q_rope_position: T.handle,
                              var_k_rope_pos_offset: T.handle, var_output: T.handle, var_lse: T.handle,
                              causal: T.int32, rotary_mode: T.int32, rope_scale: T.float32,
                              rope_theta: T.float32, sm_scale: T.float32):
        T.func_attr({"tirx.is_scheduled": True})
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
        for b, h in T.grid(batch_size, h_q):
            with T.sblock("attn"):
                acc = T.sblock_alloc_buffer((d,), "float32")
                state = T.sblock_alloc_buffer((3,), "float32")  # max, sum, score
                for i in T.serial(q_indptr[b + 1] - q_indptr[b]):
                    row: T.let[T.int32] = q_indptr[b] + i
                    q_pos: T.let[T.int32] = q_rope_position[row]
                    state[0] = T.float32(NEG)
                    state[1] = T.float32(0)
                    for x in T.serial(d):
                        acc[x] = T.float32(0)
                    for j in T.serial(kv_indptr[b + 1] - kv_indptr[b]):
                        k_pos: T.let[T.int32] = k_rope_pos_offset[b] + j
                        if k_pos <= q_pos and (q_pos - k_pos < window or k_pos < sink):
                            state[2] = T.float32(0)
                            for x in T.serial(d):
                                state[2] += T.cast(q[row, h, x], "float32") * T.cast(
                                    k[kv_indptr[b] + j, h // group, x], "float32")
                            state[0] = T.max(state[0], state[2] * sm_scale * T.float32(LOG2E))
                    for j in T.serial(kv_indptr[b + 1] - kv_indptr[b]):
                        k_pos: T.let[T.int32] = k_rope_pos_offset[b] + j
                        if k_pos <= q_pos and (q_pos - k_pos < window or k_pos < sink):
                            state[2] = T.float32(0)
                            for x in T.serial(d):
                                state[2] += T.cast(q[row, h, x], "float32") * T.cast(
                                    k[kv_indptr[b] + j, h // group, x], "float32")
                            state[2] = T.exp2(state[2] * sm_scale * T.float32(LOG2E) - state[0])
                            state[1] += state[2]
                            for x in T.serial(d):
                                acc[x] += state[2] * T.cast(v[kv_indptr[b] + j, h // group, x], "float32")
                    for x in T.serial(d):
                        output[row, h, x] = T.cast(
                            T.if_then_else(state[1] > T.float32(0), acc[x] / state[1], T.float32(0)), dtype)
                    lse[row, h] = T.if_then_else(state[1] > T.float32(0), state[0] + T.log2(state[1]),
                                                 T.float32(NEG))

    return window_prefill_ragged


def paged_prefill(h_kv: int, h_q: int, d: int, dtype: str, window: int, sink: int, page_size: int = 16):
    group = h_q // h_kv

    @T.prim_func(s_tir=True)
    def window_prefill_paged(var_q: T.handle, var_q_indptr: T.handle, var_pages: T.handle,
                             var_page_indptr: T.handle, var_page_values: T.handle, var_length_info: T.handle,
                             var_k_rope_pos_offset: T.handle, var_q_rope_position: T.handle,
                             var_output: T.handle, var_lse: T.handle, causal: T.int32, rotary_mode: T.int32,
                             rope_scale: T.float32, rope_theta: T.float32, sm_scale: T.float32):
        T.func_attr({"tirx.is_scheduled": True})
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
        for b, h in T.grid(batch_size, h_q):
            with T.sblock("attn"):
                acc = T.sblock_alloc_buffer((d,), "float32")
                state = T.sblock_alloc_buffer((3,), "float32")
                first_page: T.let[T.int32] = page_indptr[b]
                for i in T.serial(q_indptr[b + 1] - q_indptr[b]):
                    row: T.let[T.int32] = q_indptr[b] + i
                    q_pos: T.let[T.int32] = q_rope_position[row]
                    state[0] = T.float32(NEG)
                    state[1] = T.float32(0)
                    for x in T.serial(d):
                        acc[x] = T.float32(0)
                    for j in T.serial(T.if_then_else(page_indptr[b + 1] > page_indptr[b], (page_indptr[b + 1] - page_indptr[b] - 1) * page_size + last_page_len[b], 0)):
                        k_pos: T.let[T.int32] = k_rope_pos_offset[b] + j
                        page: T.let[T.int32] = page_values[first_page + j // page_size]
                        if k_pos <= q_pos and (q_pos - k_pos < window or k_pos < sink):
                            state[2] = T.float32(0)
                            for x in T.serial(d):
                                state[2] += T.cast(q[row, h, x], "float32") * T.cast(
                                    pages[page, 0, h // group, j % page_size, x], "float32")
                            state[0] = T.max(state[0], state[2] * sm_scale * T.float32(LOG2E))
                    for j in T.serial(T.if_then_else(page_indptr[b + 1] > page_indptr[b], (page_indptr[b + 1] - page_indptr[b] - 1) * page_size + last_page_len[b], 0)):
                        k_pos: T.let[T.int32] = k_rope_pos_offset[b] + j
                        page: T.let[T.int32] = page_values[first_page + j // page_size]
                        if k_pos <= q_pos and (q_pos - k_pos < window or k_pos < sink):
                            state[2] = T.float32(0)
                            for x in T.serial(d):
                                state[2] += T.cast(q[row, h, x], "float32") * T.cast(
                                    pages[page, 0, h // group, j % page_size, x], "float32")
                            state[2] = T.exp2(state[2] * sm_scale * T.float32(LOG2E) - state[0])
                            state[1] += state[2]
                            for x in T.serial(d):
                                acc[x] += state[2] * T.cast(pages[page, 1, h // group, j % page_size, x], "float32")
                    for x in T.serial(d):
                        output[row, h, x] = T.cast(
                            T.if_then_else(state[1] > T.float32(0), acc[x] / state[1], T.float32(0)), dtype)
                    lse[row, h] = T.if_then_else(state[1] > T.float32(0), state[0] + T.log2(state[1]),
                                                 T.float32(NEG))

    return window_prefill_paged


def paged_decode(h_kv: int, h_q: int, d: int, dtype: str, window: int, sink: int, page_size: int = 16):
    group = h_q // h_kv

    @T.prim_func(s_tir=True)
    def window_decode_paged(q_handle: T.handle, pages_handle: T.handle, page_indptr_handle: T.handle,
                            page_values_handle: T.handle, var_length_info: T.handle,
                            k_rope_pos_offset_handle: T.handle, q_rope_position_handle: T.handle,
                            output_handle: T.handle, lse_handle: T.handle, rotary_mode: T.int32,
                            rope_scale: T.float32, rope_theta: T.float32, sm_scale: T.float32):
        T.func_attr({"tirx.is_scheduled": True})
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
        for b, h in T.grid(B, h_q):
            with T.sblock("attn"):
                acc = T.sblock_alloc_buffer((d,), "float32")
                state = T.sblock_alloc_buffer((3,), "float32")
                first_page: T.let[T.int32] = page_indptr[b]
                q_pos: T.let[T.int32] = q_rope_position[b]
                state[0] = T.float32(NEG)
                state[1] = T.float32(0)
                for x in T.serial(d):
                    acc[x] = T.float32(0)
                for j in T.serial(T.if_then_else(page_indptr[b + 1] > page_indptr[b], (page_indptr[b + 1] - page_indptr[b] - 1) * page_size + last_page_len[b], 0)):
                    k_pos: T.let[T.int32] = k_rope_pos_offset[b] + j
                    page: T.let[T.int32] = page_values[first_page + j // page_size]
                    if k_pos <= q_pos and (q_pos - k_pos < window or k_pos < sink):
                        state[2] = T.float32(0)
                        for x in T.serial(d):
                            state[2] += T.cast(q[b, h, x], "float32") * T.cast(
                                pages[page, 0, h // group, j % page_size, x], "float32")
                        state[0] = T.max(state[0], state[2] * sm_scale * T.float32(LOG2E))
                for j in T.serial(T.if_then_else(page_indptr[b + 1] > page_indptr[b], (page_indptr[b + 1] - page_indptr[b] - 1) * page_size + last_page_len[b], 0)):
                    k_pos: T.let[T.int32] = k_rope_pos_offset[b] + j
                    page: T.let[T.int32] = page_values[first_page + j // page_size]
                    if k_pos <= q_pos and (q_pos - k_pos < window or k_pos < sink):
                        state[2] = T.float32(0)
                        for x in T.serial(d):
                            state[2] += T.cast(q[b, h, x], "float32") * T.cast(
                                pages[page, 0, h // group, j % page_size, x], "float32")
                        state[2] = T.exp2(state[2] * sm_scale * T.float32(LOG2E) - state[0])
                        state[1] += state[2]
                        for x in T.serial(d):
                            acc[x] += state[2] * T.cast(pages[page, 1, h // group, j % page_size, x], "float32")
                for x in T.serial(d):
                    output[b, h, x] = T.cast(
                        T.if_then_else(state[1] > T.float32(0), acc[x] / state[1], T.float32(0)), dtype)
                lse[b, h] = T.if_then_else(state[1] > T.float32(0), state[0] + T.log2(state[1]), T.float32(NEG))

    return window_decode_paged
