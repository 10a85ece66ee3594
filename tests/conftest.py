import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TVM_NUM_THREADS", str(os.cpu_count() or 2))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def store(tmp_path):
    from store import Store

    return Store(tmp_path / "store").ensure()
