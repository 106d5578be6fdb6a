"""Test setup: 8 virtual CPU devices, quiet TensorFlow, shared real data."""
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402

# Must happen before any JAX backend is initialised (first device query).
jax.config.update("jax_num_cpu_devices", 8)

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> pathlib.Path:
  """The real-video test data beside the project (`../shared/data`)."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real test videos not found at {SHARED_DATA} (a fresh clone has no ../shared)")
  return SHARED_DATA
