"""GPU targets: dlight schedules."""
from __future__ import annotations


def schedule_pass(kind: str):
    import tvm.s_tir.dlight as dl

    rules = [dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.LowBatchGEMV(), dl.gpu.Reduction(),
             dl.gpu.GeneralReduction(), dl.gpu.Fallback()]
    if kind in ("metal", "opencl"):
        # dl.gpu.Matmul segfaults in Tensorize for Metal, and rejects our matmuls for OpenCL.
        rules = rules[1:]
    return dl.ApplyDefaultSchedule(*rules)
