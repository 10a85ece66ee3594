"""Known gpt_neox configs by name, for CONFIG given as a preset (weights then come from --source)."""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "redpajama_3b_v1": {
        "model_type": "gpt_neox", "hidden_size": 2560, "intermediate_size": 10240,
        "num_attention_heads": 32, "num_hidden_layers": 32, "layer_norm_eps": 1e-05,
        "vocab_size": 50432, "max_position_embeddings": 2048, "rotary_pct": 1.0,
        "rotary_emb_base": 10000, "use_parallel_residual": False, "hidden_act": "gelu",
        "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 0,
    },
}
