"""Maps the design's top-level folders into one import namespace: pipeline/ is the llmc package,
store/ and runtime/ are llmc.store and llmc.runtime. Metadata lives in pyproject.toml."""
from setuptools import Extension, find_packages, setup

FOLDERS = {"llmc": "pipeline", "llmc.store": "store", "llmc.runtime": "runtime"}

# The group quantizers in C (llmc.quant.group). The same bytes on every machine: no FMA contraction,
# no fast-math, no -march (a wheel built here runs, and agrees, everywhere). -fno-trapping-math changes
# no result (nothing reads the floating-point exception flags): it lets the compiler vectorize loops with
# float compare-and-selects, which it otherwise keeps as branches.
KERNELS = Extension("llmc.quant._group", ["pipeline/quant/_group.c"],
                 extra_compile_args=["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math"])

setup(
    package_dir=FOLDERS,
    ext_modules=[KERNELS],
    package_data={"llmc.runtime": ["static/*"]},  # the chat page of llmc serve
    packages=[f"{name}.{sub}" if sub else name for name, folder in FOLDERS.items()
              for sub in ("", *find_packages(folder))],
)
