"""llama.cpp's qwen2moe / qwen3moe GGUF files stack their experts (ffn_*_exps) as Mixtral's do: not read yet."""
from llmc.families.mixtral.gguf import GGUF_IGNORED, GGUF_NAMES, gguf_config, gguf_unpermute

__all__ = ["GGUF_IGNORED", "GGUF_NAMES", "gguf_config", "gguf_unpermute"]
