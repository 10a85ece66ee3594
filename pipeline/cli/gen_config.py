"""`llmc gen_config`: write mlc-chat-config.json and the tokenizer files."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llmc.cli.common import OutputOpt, ReadOnlyOpt, RemoteOpt, StoreOpt, open_store, session

COMMAND = "gen_config"
HELP = "Generate mlc-chat-config.json and tokenizer files for a model."
Size = Optional[int]


def command(
    ctx: typer.Context,
    config: Annotated[str, typer.Argument(help="Model folder, config.json, .gguf file or preset name.")],
    quantization: Annotated[str, typer.Option("--quantization", help="e.g. q4f16_1.")],
    conv_template: Annotated[str, typer.Option("--conv-template", help="A template name, or auto.")],
    output: OutputOpt,
    model_type: Annotated[str, typer.Option("--model-type")] = "auto",
    context_window_size: Annotated[Size, typer.Option("--context-window-size")] = None,
    sliding_window_size: Annotated[Size, typer.Option("--sliding-window-size")] = None,
    prefill_chunk_size: Annotated[Size, typer.Option("--prefill-chunk-size")] = None,
    attention_sink_size: Annotated[Size, typer.Option("--attention-sink-size")] = None,
    tensor_parallel_shards: Annotated[Size, typer.Option("--tensor-parallel-shards", "--tensor-parallel-shard")] = None,
    max_batch_size: Annotated[Size, typer.Option("--max-batch-size")] = None,
    no_tokenizer: Annotated[bool, typer.Option("--no-tokenizer", help="Weights-only use: no tokenizer files.")] = False,
    store: StoreOpt = None,
    remote: RemoteOpt = None,
    remote_read_only: ReadOnlyOpt = False,
) -> None:
    from llmc.commands.gen_config import generate_config
    from llmc.graph.progress import terminal

    with terminal():
        result = generate_config(config, quantization, conv_template, Path(output),
                                 open_store(ctx, store, remote, remote_read_only), started=session(ctx).started,
                                 model_type=model_type, no_tokenizer=no_tokenizer,
                                 context_window_size=context_window_size,
                                 sliding_window_size=sliding_window_size, prefill_chunk_size=prefill_chunk_size,
                                 attention_sink_size=attention_sink_size,
                                 tensor_parallel_shards=tensor_parallel_shards, max_batch_size=max_batch_size)
    result.report()
