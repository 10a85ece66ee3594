"""llmc's runtime: compiled model libraries run from Python."""
