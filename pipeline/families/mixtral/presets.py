"""Known mixtral configs by name, for CONFIG given as a preset (weights then come from --source)."""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "mixtral_8x7b": {
        "model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
        "rms_norm_eps": 1e-05, "vocab_size": 32000, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
        "sliding_window": None, "tie_word_embeddings": False, "hidden_act": "silu",
        "bos_token_id": 1, "eos_token_id": 2,
    },
}
