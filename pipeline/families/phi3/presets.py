"""Known phi3 configs by name (Phi-3.5-mini-instruct), for CONFIG given as a preset."""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "phi3_5_mini": {
        "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192, "num_attention_heads": 32,
        "num_key_value_heads": 32, "num_hidden_layers": 32, "rms_norm_eps": 1e-05, "vocab_size": 32064,
        "max_position_embeddings": 131072, "original_max_position_embeddings": 4096, "rope_theta": 10000.0,
        "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 48, "long_factor": [1.0] * 48},
        "sliding_window": 262144, "tie_word_embeddings": False, "hidden_act": "silu", "bos_token_id": 1,
        "eos_token_id": 32000,
    },
}
