"""llmc's compiler pipeline: stages, the runner that caches them, and the CLI."""
