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


@pytest.fixture
def memory_bucket(monkeypatch):
  """'gs://bucket', served by fsspec's in-memory file system: a non-local path, no network.

  etils.epath sends gs:// to TensorFlow's gfile or to fsspec's GCS; here its backend is
  fsspec's memory file system instead, emptied before and after the test.
  """
  import fsspec
  from etils.epath import backend, gpath

  memory_fs = fsspec.filesystem("memory")

  class Memory(backend._FileSystemSpecBackend):  # pylint: disable=protected-access
    def fs(self, path):
      return memory_fs

  memory, local = Memory(), backend.os_backend
  monkeypatch.setattr(gpath._GPath, "_backend",
                      property(lambda p: memory if p._uri_scheme else local))

  def clear():
    memory_fs.store.clear()
    memory_fs.pseudo_dirs[:] = [""]

  clear()
  yield "gs://bucket"
  clear()
