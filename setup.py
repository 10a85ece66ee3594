"""Maps the design's top-level folders into one import namespace: pipeline/ is the llmc package,
store/ and runtime/ are llmc.store and llmc.runtime. Metadata lives in pyproject.toml."""
from setuptools import find_packages, setup

FOLDERS = {"llmc": "pipeline", "llmc.store": "store", "llmc.runtime": "runtime"}

setup(
    package_dir=FOLDERS,
    package_data={"llmc.runtime": ["static/*"]},  # the chat page of llmc serve
    packages=[f"{name}.{sub}" if sub else name for name, folder in FOLDERS.items()
              for sub in ("", *find_packages(folder))],
)
