"""`llmc convert_weight`: quantize and shard a model's weights into MLC's format."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llmc.cli.common import OutputOpt, ReadOnlyOpt, RemoteOpt, StoreOpt, open_store, session

COMMAND = "convert_weight"
HELP = "Convert a model's weights to MLC's quantized, sharded format."


def command(
    ctx: typer.Context,
    config: Annotated[str, typer.Argument(help="Model folder, config.json, .gguf file or preset name.")],
    quantization: Annotated[str, typer.Option("--quantization", help="e.g. q4f16_1, q0f32.")],
    output: OutputOpt,
    model_type: Annotated[str, typer.Option("--model-type", help="auto, llama, mistral, gpt_neox.")] = "auto",
    device: Annotated[str, typer.Option("--device", help="Accepted for compatibility; quantization "
                                                         "runs on the CPU.")] = "auto",
    source: Annotated[Optional[str], typer.Option("--source", help="Weights folder or file.")] = None,
    source_format: Annotated[str, typer.Option("--source-format", help="auto, huggingface-safetensor, "
                                               "huggingface-torch, gguf, awq.")] = "auto",
    quantization_mode: Annotated[str, typer.Option(
        "--quantization-mode", help="search (default): each group's scale and codes chosen for the least "
        "error, in MLC's format; mlc: MLC's own rule, byte-identical to mlc_llm convert_weight.")] = "search",
    calibration_text: Annotated[Optional[str], typer.Option(
        "--calibration-text", help="A text file the model is run on (in transformers) to weigh each input "
        "channel's error by its activations, as llama.cpp's imatrix does.")] = None,
    store: StoreOpt = None,
    remote: RemoteOpt = None,
    remote_read_only: ReadOnlyOpt = False,
) -> None:
    from llmc.commands.convert_weight import check_quantize_device, convert_weight
    from llmc.graph.progress import terminal

    check_quantize_device(device)

    with terminal():
        result = convert_weight(config, quantization, Path(output),
                                open_store(ctx, store, remote, remote_read_only), started=session(ctx).started,
                                model_type=model_type, source=source, source_format=source_format,
                                mode=quantization_mode, calibration_text=calibration_text)
    result.report()
