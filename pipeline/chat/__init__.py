"""Conversation templates and tokenizer files: shared by gen_config and the runtime."""
