"""The stage graph: steps, the runner that keys, caches and runs them, tool fingerprints, progress."""
