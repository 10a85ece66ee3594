"""Known qwen2_moe and qwen3_moe configs by name, for CONFIG given as a preset (weights then come from --source)."""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "qwen1_5_moe_a2_7b": {
        "model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632, "moe_intermediate_size": 1408,
        "shared_expert_intermediate_size": 5632, "num_experts": 60, "num_experts_per_tok": 4,
        "norm_topk_prob": False, "decoder_sparse_step": 1, "mlp_only_layers": [], "num_attention_heads": 16,
        "num_hidden_layers": 24, "num_key_value_heads": 16, "rms_norm_eps": 1e-06, "vocab_size": 151936,
        "max_position_embeddings": 8192, "rope_theta": 1000000.0, "tie_word_embeddings": False,
        "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151643,
    },
    "qwen3_30b_a3b": {
        "model_type": "qwen3_moe", "hidden_size": 2048, "intermediate_size": 6144, "moe_intermediate_size": 768,
        "num_experts": 128, "num_experts_per_tok": 8, "norm_topk_prob": True, "decoder_sparse_step": 1,
        "mlp_only_layers": [], "num_attention_heads": 32, "num_hidden_layers": 48, "num_key_value_heads": 4,
        "head_dim": 128, "rms_norm_eps": 1e-06, "vocab_size": 151936, "max_position_embeddings": 40960,
        "rope_theta": 1000000.0, "tie_word_embeddings": False, "attention_bias": False, "hidden_act": "silu",
        "bos_token_id": 151643, "eos_token_id": 151645,
    },
}
