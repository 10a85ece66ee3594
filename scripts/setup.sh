#!/usr/bin/env bash
# Set up a fresh machine (idempotent): .venv with llmc and its test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# Reinstall only when the dependencies changed since the last install.
stamp=.venv/.llmc-installed
want=$(cat pyproject.toml setup.py scripts/setup.sh pipeline/quant/*.c | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install -q -e '.[test]'
  # response_format (runtime/grammar.py): xgrammar without its dependencies, whose triton (1 GB, GPU
  # kernels) the CPU never uses; what it does use (numpy, pydantic, apache-tvm-ffi, torch) is installed.
  .venv/bin/pip install -q --no-deps xgrammar==0.2.9
  echo "$want" > "$stamp"
fi
# Bytecode for llmc's own modules, as pip writes for an installed package (an editable install leaves it
# to the first import, which environments with PYTHONDONTWRITEBYTECODE never store): without it every
# process compiles them again, 0.3-0.4 s of a cold compile's lower child.
.venv/bin/python -m compileall -q -j 0 pipeline store runtime >/dev/null
