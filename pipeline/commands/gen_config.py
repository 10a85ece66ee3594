"""gen_config: mlc-chat-config.json and tokenizer files, through the store, into an output folder."""
from __future__ import annotations

from pathlib import Path

from llmc import quant as quantization
from llmc.chat.tokenizer_files import FILES as TOKENIZER_FILES
from llmc.commands import outputs
from llmc.commands.result import Result
from llmc.errors import UserError
from llmc.graph.runner import Runner, Source, Step
from llmc.sources.model_input import resolve_config
from llmc.stages import gen_config
from llmc.store import ref_segment

CONFIG_SIDE_FILES = ("generation_config.json", "chat_template.jinja") + TOKENIZER_FILES


def config_step(config: str, quant: str, conv_template: str, model_type: str = "auto",
                no_tokenizer: bool = False, **sizes) -> Step:
    s = quantization.scheme(quant)
    mi = resolve_config(config)
    options = {"model_type": model_type, "quantization": s.name, "conv_template": conv_template,
               "preset": mi.preset, "config_file": mi.config_file, "no_tokenizer": no_tokenizer}
    for name, value in sizes.items():
        if name not in gen_config.SIZES:
            raise TypeError(f"unknown size {name}")
        if value is not None:
            if value < 0 or (value == 0 and name != "attention_sink_size"):
                raise UserError(f"--{name.replace('_', '-')} must be positive, not {value}")
            options[name] = value
    if conv_template != "auto":
        from llmc.chat import templates as conversation

        conversation.get(conv_template)  # an unknown name fails before any work
    inputs = {}
    if mi.gguf is not None:
        inputs["config"] = Source(mi.gguf.parent, (mi.gguf.name,))
        options["gguf"] = mi.gguf.name
    elif mi.config_dir is not None:
        inputs["config"] = mi.config_source(CONFIG_SIDE_FILES)
    return Step(gen_config, inputs=inputs, options=options)


def generate_config(config: str, quant: str, conv_template: str, output: Path, store, model_type: str = "auto",
                    no_tokenizer: bool = False, started: float | None = None, **sizes) -> Result:
    output = Path(output)
    step = config_step(config, quant, conv_template, model_type, no_tokenizer, **sizes)
    outputs.check_writable(output)
    with Runner(store, started) as runner:
        manifest = runner.manifest(step)
        warnings = _warnings(store, manifest)
        outputs.install_dir(store, manifest, output, last=("mlc-chat-config.json",),
                            exclude=(gen_config.WARNINGS_FILE,))
        store.set_ref(f"gen_config/{ref_segment(output.resolve().name)}", manifest)
        return Result(manifest, output, runner.summary(), runner.counts(), [f"warning: {w}" for w in warnings])


def _warnings(store, manifest: str) -> list[str]:
    return (outputs.artifact_text(store, manifest, gen_config.WARNINGS_FILE) or "").splitlines()
