"""GPU targets: dlight's rules, minus the paths that crash TVM.

dlight's `gpu.Matmul` tries tensor-core (CUDA sm_70+) and simdgroup (Metal) tensorization before its
tiled SIMT schedule. On this TVM both die inside `sch.tensorize` with a segfault, not an exception,
for shapes as common as SmolLM2's (hidden 576) or hidden 128 / intermediate 320. `SimtMatmul` keeps
dlight's SIMT schedule with the device's own tile sizes and never reaches tensorization.
"""
from __future__ import annotations

import tvm
import tvm.s_tir.dlight as dl

# A GPU target kind for which dlight's Matmul has no special path (no tensor cores, no simdgroups, no
# Adreno outer-reduction variant): given to it so that only its tiled SIMT schedule runs.
_PLAIN_GPU = tvm.target.Target({"kind": "webgpu"})


class SimtMatmul(dl.gpu.Matmul):
    """dlight's tiled matmul (shared-memory tiles, thread-local accumulators) without tensorization."""

    def __init__(self, target: tvm.target.Target):
        self.config = dl.gpu.Matmul().get_configs(target)

    def get_configs(self, target: tvm.target.Target) -> dl.gpu.Matmul.Config:
        return self.config

    def apply(self, func, target, tunable):
        if not self.is_target_available(target):
            return None
        return super().apply(func, _PLAIN_GPU, tunable)


def schedule_pass(target: tvm.target.Target):
    # The order is dlight's own: the first rule that matches a function schedules it.
    rules = [SimtMatmul(target), dl.gpu.GEMV(), dl.gpu.LowBatchGEMV(), dl.gpu.Reduction(),
             dl.gpu.GeneralReduction(), dl.gpu.Fallback()]
    return dl.ApplyDefaultSchedule(*rules)
