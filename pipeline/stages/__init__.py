"""The stages, in pipeline order. Each module follows llmc.graph.stage.Stage: NAME, VERSION, DEFAULTS,
TOOLS, EPHEMERAL and a pure run(inputs, options, out_dir) that never touches the store."""
from llmc.graph import stage
from llmc.stages import codegen, gen_config, link, load, lower, quantize, shard

STAGES = (load, quantize, shard, gen_config, lower, codegen, link)
for _stage in STAGES:
    stage.check(_stage)

__all__ = ["STAGES", "codegen", "gen_config", "link", "load", "lower", "quantize", "shard"]
