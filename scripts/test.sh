#!/usr/bin/env bash
# Run the test suite (sets up .venv first if needed). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export TVM_NUM_THREADS=${TVM_NUM_THREADS:-$(nproc)}
exec .venv/bin/python -m pytest -q "$@"
