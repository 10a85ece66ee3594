"""Everything that imports TVM at compile time: lowering, the Relax pass list, kernels and schedules.

Imported by the lower and codegen stages only (never on a cache hit)."""
