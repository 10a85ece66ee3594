#!/usr/bin/env bash
# The main job on a fresh machine: set up, then show the toolchain and a healthy store.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/llmc --version
.venv/bin/llmc store verify
