"""pytest setup for the generated Python bindings: imports bindings/generated/python (run
bindings/generate.sh first; it puts the host library beside the module)."""

import sys
from pathlib import Path

import pytest

GENERATED = Path(__file__).resolve().parents[2] / "generated" / "python"
sys.path.insert(0, str(GENERATED))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import embargo_ffi  # noqa: E402  (needs the path above)


@pytest.fixture
def embargo(tmp_path):
    """A fresh Embargo with its storage in a temporary directory."""
    e = embargo_ffi.Embargo(embargo_ffi.EmbargoConfig(), str(tmp_path / "state"))
    yield e
    e.shutdown()
