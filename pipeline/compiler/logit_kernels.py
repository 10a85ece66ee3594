"""In-place logit kernels MLC's C++ engine looks up by name (bias, penalties, grammar bitmask).

Standalone TIR functions, called by the runtime with the argument orders of
MLC's ABI; llmc's own Python engine applies the same adjustments with numpy.
"""
from __future__ import annotations

from tvm import s_tir, tirx
from tvm.script import tirx as T


@T.prim_func(s_tir=True)
def apply_logit_bias_inplace(var_logits: T.handle, var_pos2seq_id: T.handle, var_token_ids: T.handle,
                             var_logit_bias: T.handle):
    T.func_attr({"global_symbol": "apply_logit_bias_inplace", "tirx.noalias": True, "tirx.is_scheduled": True})
    batch_size = T.int32()
    vocab_size = T.int32()
    num_token = T.int32()
    logits = T.match_buffer(var_logits, (batch_size, vocab_size), "float32")
    pos2seq_id = T.match_buffer(var_pos2seq_id, (num_token,), "int32")
    token_ids = T.match_buffer(var_token_ids, (num_token,), "int32")
    logit_bias = T.match_buffer(var_logit_bias, (num_token,), "float32")
    for i in T.serial(num_token):
        with T.sblock("bias"):
            vi = T.axis.spatial(num_token, i)
            logits[pos2seq_id[vi], token_ids[vi]] = logits[pos2seq_id[vi], token_ids[vi]] + logit_bias[vi]


@T.prim_func(s_tir=True)
def apply_penalty_inplace(var_logits: T.handle, var_seq_ids: T.handle, var_pos2seq_id: T.handle,
                          var_token_ids: T.handle, var_token_cnt: T.handle, var_penalties: T.handle):
    T.func_attr({"global_symbol": "apply_penalty_inplace", "tirx.noalias": True, "tirx.is_scheduled": True})
    batch_size = T.int32()
    vocab_size = T.int32()
    num_token = T.int32()
    num_seq = T.int32()
    logits = T.match_buffer(var_logits, (batch_size, vocab_size), "float32")
    seq_ids = T.match_buffer(var_seq_ids, (num_seq,), "int32")
    pos2seq_id = T.match_buffer(var_pos2seq_id, (num_token,), "int32")
    token_ids = T.match_buffer(var_token_ids, (num_token,), "int32")
    token_cnt = T.match_buffer(var_token_cnt, (num_token,), "int32")
    penalties = T.match_buffer(var_penalties, (num_seq, 3), "float32")  # presence, frequency, repetition
    for i in T.serial(num_token):
        with T.sblock("penalty"):
            vi = T.axis.spatial(num_token, i)
            s: T.let[T.int32] = pos2seq_id[vi]
            row: T.let[T.int32] = seq_ids[s]
            tok: T.let[T.int32] = token_ids[vi]
            logits[row, tok] = logits[row, tok] - (penalties[s, 0] + T.cast(token_cnt[vi], "float32") * penalties[s, 1])
            logits[row, tok] = T.if_then_else(logits[row, tok] < T.float32(0), logits[row, tok] * penalties[s, 2],
                                              logits[row, tok] / penalties[s, 2])


@T.prim_func(s_tir=True)
def apply_bitmask_inplace(var_logits: T.handle, var_seq_ids: T.handle, var_bitmask: T.handle):
    T.func_attr({"global_symbol": "apply_bitmask_inplace", "tirx.noalias": True, "tirx.is_scheduled": True})
    batch_size = T.int32()
    vocab_size = T.int32()
    num_seq = T.int32()
    logits = T.match_buffer(var_logits, (batch_size, vocab_size), "float32")
    seq_ids = T.match_buffer(var_seq_ids, (num_seq,), "int32")
    bitmask = T.match_buffer(var_bitmask, (batch_size, (vocab_size + 31) // 32), "int32")
    for i, v in T.grid(num_seq, vocab_size):
        with T.sblock("mask"):
            vi, vv = T.axis.remap("SS", [i, v])
            logits[seq_ids[vi], vv] = T.if_then_else(
                (bitmask[seq_ids[vi], vv // 32] >> (vv % 32)) & 1 == 1, logits[seq_ids[vi], vv], T.min_value("float32"))


KERNELS = {"apply_logit_bias_inplace": apply_logit_bias_inplace, "apply_penalty_inplace": apply_penalty_inplace,
           "apply_bitmask_inplace": apply_bitmask_inplace}


THREADS = 256


def for_gpu(kernel: tirx.PrimFunc) -> tirx.PrimFunc:
    """The same update with one iteration (a token, or a logit) per GPU thread. The kernels write
    in place where the data says, so the schedule's dataflow checks cannot pass and are off."""
    sch = s_tir.Schedule(kernel, enable_check=False)
    (block,) = sch.get_child_blocks(sch.get_sblock("root"))
    loops = sch.get_loops(block)
    blocks, threads = sch.split(sch.fuse(*loops) if len(loops) > 1 else loops[0], [None, THREADS])
    sch.bind(blocks, "blockIdx.x")
    sch.bind(threads, "threadIdx.x")
    return sch.mod["main"]
