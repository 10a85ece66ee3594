"""CPU schedules for the matmuls llmc's layers emit.

Every linear layer is one tensor expression with three stages (see layers.py):
`*_w`, the (dequantized) weight as [K, N]; `*_acc`, the float32 reduction; and
an optional cast, plus whatever elementwise work FuseOps attached after it.

- Decode (rows = 1, or a small batch): a GEMV. The weight stage is inlined into
  the reduction, K is split into vector lanes and rfactored, so each output row
  is a vectorized dot product with its dequantization in registers; rows are
  split across threads.
- Prefill (rows = seq_len): a register-tiled matmul. For each tile of 32 output
  columns the weight panel [K, 32] is dequantized once into a local buffer (from
  a transposed local copy of the tile's packed words and scales); then
  each tile of 8 rows accumulates 8 x 32 outputs in registers over all of K
  (16 AVX-512 accumulators, one broadcast of the input per row and k) and the
  epilogue (residual add, ...) runs on the tile before it is stored. 170-187
  GFLOP/s on 2 Zen 4 cores at the SmolLM2 shape, against an FMA peak of 225.

Other functions (norms, attention kernels, RoPE, embeddings) run as TVM lowers
them: the stock dlight CPU rules were slower on them, or quadratic.
"""
from __future__ import annotations

import tvm
from tvm import s_tir, tirx

from llmc.compiler.int8_matmul import PARALLEL_CHUNKS
from llmc.compiler.primfuncs import map_prim_funcs

GEMV_MAX_ROWS = 8
MIN_PARALLEL_ROWS = 4
ROW_GROUP = 4  # GEMV rows per inner loop; threads take PARALLEL_CHUNKS runs of these groups
PREFILL_TILE = {"m": 8, "n": 32}


def _lanes(extent, choices=(16, 8, 4, 2)) -> int:
    if not isinstance(extent, int):
        return 1
    return next((c for c in choices if extent % c == 0), 1)


def _extent(sch: s_tir.Schedule, loop) -> int | tirx.PrimExpr:
    ext = sch.get(loop).extent
    return int(ext) if isinstance(ext, tirx.IntImm) else ext


def _blocks(sch: s_tir.Schedule):
    root = sch.get_sblock("root")
    return [(sch.get(b).name_hint, b) for b in sch.get_child_blocks(root)]


def _is_batch_decode(rows) -> bool:
    if isinstance(rows, int):
        return rows <= GEMV_MAX_ROWS
    return "batch_size" in str(rows)


def schedule(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """The scheduled function, or None if it is not one of our matmuls."""
    sch = s_tir.Schedule(func)
    blocks = _blocks(sch)
    names = [n for n, _ in blocks]
    acc = [b for n, b in blocks if n.endswith("_acc")]
    weight = [b for n, b in blocks if n.endswith("_w")]
    if len(acc) != 1 or len(weight) != 1:
        return _rowwise(func)
    acc, weight = acc[0], weight[0]
    after = names[names.index(sch.get(acc).name_hint) + 1:]
    epilogue = _epilogue(sch, acc, [b for n, b in blocks if n in after])
    loops = sch.get_loops(acc)
    if len(loops) < 2:
        return None
    rows = 1
    for loop in loops[:-2]:
        rows = rows * _extent(sch, loop)
    if _is_batch_decode(rows) or sch.get(acc).name_hint.startswith("moe"):
        # an expert matmul's rows each gather their own expert's weight: a GEMV per row (compiler/moe.py)
        _gemv(sch, acc, weight, epilogue)
    else:
        _matmul(sch, acc, weight, epilogue)
    return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def _epilogue(sch, acc, later: list) -> list:
    """The blocks after acc that consume its result, directly or through each other. A later block
    that does not (a float16 bias cast to float32 for the add) is inlined into its consumer: moved under
    the output tile it would be computed for that tile only, and read by the others before written."""
    produced = [region.source for region in sch.get(acc).writes]
    epilogue = []
    for block in later:
        if any(region.source.same_as(buffer) for region in sch.get(block).reads for buffer in produced):
            epilogue.append(block)
            produced += [region.source for region in sch.get(block).writes]
        else:
            sch.compute_inline(block)
    return epilogue


def _rowwise(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """Norms and elementwise functions (SiLU * up, residual adds, ...): producers inlined where
    they can be, one task per row of the output, the row's last axis vectorized. None when the
    function does not have that shape (it then runs as TVM lowers it)."""
    sch = s_tir.Schedule(func)
    blocks = [b for _, b in _blocks(sch)]
    if not blocks or any(iv.iter_type != tirx.IterVar.DataPar for iv in sch.get(blocks[-1]).iter_vars):
        return None
    try:
        for block in blocks[:-1]:
            try:
                sch.compute_inline(block)
            except s_tir.ScheduleError:
                pass  # a reduction (a norm's sum of squares), or read twice
        *producers, out = [b for _, b in _blocks(sch)]
        *lead, inner = sch.get_loops(out)
        if not lead:
            return None
        row = sch.fuse(*lead) if len(lead) > 1 else lead[0]
        for block in reversed(producers):
            sch.compute_at(block, row)
        lanes = _lanes(_extent(sch, inner))
        if lanes > 1:
            sch.vectorize(sch.split(inner, [None, lanes])[1])
        rows = _extent(sch, row)
        if not isinstance(rows, int) or rows >= MIN_PARALLEL_ROWS:  # waking the pool costs more than one row
            sch.parallel(row)
    except s_tir.ScheduleError:
        return None
    return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def _gemv(sch, acc, weight, epilogue) -> None:
    sch.compute_inline(weight)
    *batch, n, k = sch.get_loops(acc)
    m = sch.fuse(*batch) if len(batch) > 1 else (batch[0] if batch else sch.add_unit_loop(acc))
    lanes = _lanes(_extent(sch, k))
    no, ni = sch.split(n, [None, _lanes(_extent(sch, n), (ROW_GROUP, 2))])
    ko, ki = sch.split(k, [None, lanes])
    sch.reorder(m, no, ni, ko, ki)
    # rfactor leaves the original loops to the write-back block and gives the partial sums a
    # nest of their own: move that nest under the row, then vectorize its lanes.
    partial = sch.rfactor(ki, factor_axis=len(sch.get(acc).iter_vars) - 1)
    sch.compute_at(partial, ni)
    sch.set_scope(partial, 0, "local")
    *_, part_ki, part_ko = sch.get_loops(partial)  # compute_at regenerates them in block-iter order
    sch.reorder(part_ko, part_ki)
    sch.vectorize(part_ki)
    for block in epilogue:
        sch.reverse_compute_at(block, ni)
    # A few long parallel iterations rather than one per group of rows: the partial sums'
    # buffer inside a parallel loop comes from TVM's workspace pool (a call per iteration, and
    # the input reloaded into registers after it), which cost decode 10-20%.
    tasks = sch.fuse(m, no)
    groups = _extent(sch, tasks)
    if not isinstance(groups, int) or groups > PARALLEL_CHUNKS:
        tasks, _ = sch.split(tasks, [PARALLEL_CHUNKS, None])
    sch.parallel(tasks)
    sch.decompose_reduction(partial, part_ko)  # last: other primitives want the init inside the block


def _matmul(sch, acc, weight, epilogue) -> None:
    # Rows are padded to a multiple of the tile so the inner loop has no bounds check: with one,
    # LLVM keeps the accumulators in memory instead of registers (2x slower).
    rows_tile, lanes = PREFILL_TILE["m"], _lanes(_extent(sch, sch.get_loops(acc)[-2]), (PREFILL_TILE["n"], 16, 8, 4, 2))
    sch.pad_einsum(acc, [1] * (len(sch.get(acc).iter_vars) - 3) + [rows_tile, 1, 1])
    write_back = sch.get_consumers(acc)[0]
    *batch, n, k = sch.get_loops(acc)
    m = sch.fuse(*batch) if len(batch) > 1 else batch[0]
    mo, mi = sch.split(m, [None, rows_tile])
    no, ni = sch.split(n, [None, lanes])
    sch.reorder(no, mo, k, mi, ni)
    # the weight panel [K, lanes] is dequantized once per column tile and reused by every row tile
    sch.compute_at(weight, no)
    _transpose_packed_reads(sch, weight, no)
    sch.set_scope(weight, 0, "local")
    sch.vectorize(sch.get_loops(weight)[-1])
    tile = sch.cache_write(acc, 0, "local")  # [rows_tile, lanes] accumulators: registers
    for block in (tile, write_back, *epilogue):
        sch.reverse_compute_at(block, mo)
        sch.vectorize(sch.get_loops(block)[-1])
    sch.vectorize(ni)
    sch.unroll(mi)
    sch.parallel(no)
    sch.decompose_reduction(acc, k)


def _transpose_packed_reads(sch, weight, loop) -> None:
    """Copy a quantized weight's [N, ...] buffers (packed words, scales) for one column tile
    into local [..., N] buffers first. The panel is vectorized along N, so reading them where
    they are is a gather per element; the copy reads each packed word once, contiguously.
    A 32-row prefill spends 2-8x less time dequantizing (a plain float weight gains nothing:
    its copy would be the panel itself)."""
    block = sch.get(weight)
    if len(block.reads) < 2:
        return
    n_var = block.iter_vars[1].var
    row_major = [i for i, read in enumerate(block.reads)
                 if len(read.region) == 2 and _uses(read.region[0].min, n_var)]
    for cache in [sch.cache_read(weight, i, "local") for i in row_major]:
        sch.compute_at(cache, loop)
        sch.transform_layout(cache, ("write", 0), lambda n, k: (k, n))


def _uses(expr, var) -> bool:
    return any(v.same_as(var) for v in tirx.analysis.undefined_vars(expr, []))


@tvm.transform.module_pass(opt_level=0, name="ScheduleCPU")
def schedule_cpu(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    def scheduled(name: str, func: tirx.PrimFunc) -> tirx.PrimFunc | None:
        if func.attrs and func.attrs.get("tirx.is_scheduled"):
            return None
        try:
            return schedule(func)
        except s_tir.ScheduleError as exc:
            raise RuntimeError(f"scheduling {name} failed: {exc}") from exc

    return map_prim_funcs(mod, scheduled)
