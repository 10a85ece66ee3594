"""The commands as functions (convert_weight, gen_config, compile, jit): what the CLI and tests call."""
