#!/usr/bin/env bash
# Run the test suite (sets up .venv first if needed). Extra arguments go to pytest.
# The tests run in one pytest worker per core (LLMC_TEST_WORKERS=1: in this process), a test file per
# worker, so a file's module fixtures are built once; each worker's TVM gets its share of the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cores=$(nproc)
workers=${LLMC_TEST_WORKERS:-$cores}
export TVM_NUM_THREADS=${TVM_NUM_THREADS:-$(( cores / workers > 0 ? cores / workers : 1 ))}
if [ "$workers" -gt 1 ]; then
  set -- -n "$workers" --dist loadfile "$@"
fi
exec .venv/bin/python -m pytest -q --durations=25 "$@"
