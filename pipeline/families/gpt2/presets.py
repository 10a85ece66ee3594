"""Known gpt2 configs by name, for CONFIG given as a preset (weights then come from --source)."""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "gpt2": {
        "model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
        "layer_norm_epsilon": 1e-05, "activation_function": "gelu_new", "bos_token_id": 50256, "eos_token_id": 50256,
    },
    "gpt2_medium": {
        "model_type": "gpt2", "vocab_size": 50257, "n_embd": 1024, "n_layer": 24, "n_head": 16, "n_positions": 1024,
        "layer_norm_epsilon": 1e-05, "activation_function": "gelu_new", "bos_token_id": 50256, "eos_token_id": 50256,
    },
}
