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
want=$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi
