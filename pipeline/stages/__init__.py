"""Pipeline stages. Each module: NAME, VERSION, DEFAULTS, TOOLS, run(inputs, options, out_dir)."""
