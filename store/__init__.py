"""Content-addressed artifact store. Knows nothing of models, pipelines or TVM."""
from . import digest
from .local import ActionEntry, CorruptObject, MissingObject, Store, StoreError, default_root
from .manifest import Entry, Manifest

__all__ = ["ActionEntry", "CorruptObject", "Entry", "Manifest", "MissingObject", "Store",
           "StoreError", "default_root", "digest"]
