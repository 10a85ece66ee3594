"""Content-addressed artifact store. Knows nothing of models, pipelines or TVM."""
from llmc.store import digest
from llmc.store.local import (ActionEntry, CorruptObject, MissingObject, Store, StoreError, default_root,
                              ref_segment)
from llmc.store.manifest import Entry, Manifest

__all__ = ["ActionEntry", "CorruptObject", "Entry", "Manifest", "MissingObject", "Store",
           "StoreError", "default_root", "digest", "ref_segment"]
