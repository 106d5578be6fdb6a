"""videojax.malloc: when the scripts restart with mimalloc preloaded, and what it buys."""
import os
import pathlib
import subprocess
import sys

import pytest

from videojax import malloc

LIB = pathlib.Path("/x/libmimalloc.so")
OURS = ("LD_PRELOAD", "MIMALLOC_PURGE_DELAY", malloc.OPT_OUT)


def test_tuned_environ_preloads_the_library_with_purging_off():
  env = malloc.tuned_environ({"PATH": "/bin"}, LIB)
  assert env == {"PATH": "/bin", "LD_PRELOAD": str(LIB), "MIMALLOC_PURGE_DELAY": "-1"}
  # The restarted process sees its preload and does not restart again.
  assert malloc.tuned_environ(env, LIB) is None
  # The user's own mimalloc settings win.
  assert malloc.tuned_environ({"MIMALLOC_PURGE_DELAY": "100"}, LIB)["MIMALLOC_PURGE_DELAY"] == "100"


@pytest.mark.parametrize("environ,library", [
    ({"VIDEOJAX_MALLOC": "system"}, LIB),  # opted out
    ({"LD_PRELOAD": "/usr/lib/libtcmalloc.so"}, LIB),  # the user's own preload stands
    ({}, None),  # no cmeel-mimalloc (not Linux, or not installed)
])
def test_tuned_environ_leaves_the_process_alone(environ, library):
  assert malloc.tuned_environ(environ, library) is None


def _clean_env(**extra) -> dict[str, str]:
  return {**{k: v for k, v in os.environ.items() if k not in OURS}, **extra}


needs_mimalloc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or malloc.mimalloc_library() is None,
    reason="cmeel-mimalloc is a dependency on Linux only, and is not installed here")


@needs_mimalloc
def test_the_installed_library_is_found():
  lib = malloc.mimalloc_library()
  assert lib.name.startswith("libmimalloc.so") and lib.is_file()


_SCRIPT = """
import os, sys
from videojax import malloc
print("start", os.getpid(), os.environ.get("LD_PRELOAD") is not None, sys.argv[1:], flush=True)
if __name__ == "__main__":
  malloc.restart_with_mimalloc()
loaded = any("libmimalloc" in line for line in open("/proc/self/maps"))
print("main", os.getpid(), loaded, os.environ.get("MIMALLOC_PURGE_DELAY"), flush=True)
"""


@needs_mimalloc
def test_script_restarts_once_with_mimalloc_same_pid_and_arguments(tmp_path):
  script = tmp_path / "script.py"
  script.write_text(_SCRIPT)
  run = lambda env, *args: subprocess.run(  # noqa: E731
      [sys.executable, str(script), *args], env=env, capture_output=True, text=True,
      check=True, timeout=60).stdout.splitlines()
  out = run(_clean_env(), "--flag=1", "x y")
  pid = out[0].split()[1]
  assert out == [f"start {pid} False ['--flag=1', 'x y']",
                 f"start {pid} True ['--flag=1', 'x y']",
                 f"main {pid} True -1"]
  assert run(_clean_env(VIDEOJAX_MALLOC="system"))[1].endswith(" False None")


# A jitted step whose 48 MB temporary (exp of the input, the matmul's operand) XLA's CPU
# runtime allocates afresh on every call, as it does a train step's.
_FAULTS = """
import resource, jax, jax.numpy as jnp
step = jax.jit(lambda x: (jnp.exp(x) @ jnp.ones((3072, 1))).sum())
x = jnp.ones((4096, 3072))
assert step.lower(x).compile().memory_analysis().temp_size_in_bytes >= 48 * 2**20
step(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
  step(x).block_until_ready()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


@needs_mimalloc
def test_mimalloc_removes_the_page_faults_of_a_steps_temporaries():
  def faults_per_call(env):
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                         text=True, check=True, timeout=120, cwd=pathlib.Path(__file__).parent)
    return float(out.stdout.split()[-1])
  plain = faults_per_call(_clean_env(JAX_PLATFORMS="cpu"))
  tuned = faults_per_call(malloc.tuned_environ(_clean_env(JAX_PLATFORMS="cpu"),
                                               malloc.mimalloc_library()))
  # 48 MB in 4 KiB pages is 12,288 faults a call. Measured on the development VM:
  # 12,297 a call with glibc's malloc, against almost none with mimalloc keeping its pages.
  assert plain > 10_000, plain
  assert tuned < plain / 10, (plain, tuned)
