"""Test setup: 8 virtual CPU devices, quiet TensorFlow, shared real data, one XLA
compilation cache per test run."""
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests compile the same small programs many times (every fixture run builds new jitted
# steps): JAX's persistent compilation cache, shared by the xdist workers and the scripts
# they start, compiles each once per test run (the ablation fixture: 43 s -> 26 s). A new,
# empty directory each run, made by the pytest process that starts the workers (they inherit
# the variable) and removed by it at the end, so no result depends on an earlier run.
OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
CACHE_DIR = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"videojax-tests-xla-cache-{os.getpid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax  # noqa: E402

# Must happen before any JAX backend is initialised (first device query).
jax.config.update("jax_num_cpu_devices", 8)

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_sessionfinish(session):
  if OWN_CACHE and not hasattr(session.config, "workerinput"):  # After every worker.
    shutil.rmtree(CACHE_DIR, ignore_errors=True)


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
