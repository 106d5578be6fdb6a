"""A malloc that keeps freed memory, so that XLA's CPU temporaries stop page-faulting every step.

XLA's CPU runtime allocates one buffer for a step's temporaries each time the step runs: 92 MB
for the bilstm_attention train step at b 32, t 64, d 1280. glibc serves a block that large
with a fresh mmap and unmaps it on free, so the kernel maps and zeroes it again every step, a
4 KiB page at a time: about 22,000 page faults a step (measured), and with one CPU device per
core every unmap also interrupts the other cores to flush their TLBs. mimalloc (PyPI's
cmeel-mimalloc) with purging off keeps freed pages for the next step instead: that train step
then ran 1.2x faster on 2 CPU cores, while Keras' in the same process did not change
(BENCHMARKS.md). The price: memory freed while the process runs is reused, not given back, so
it holds its peak.

A process picks its malloc when it starts, so the scripts restart themselves once with it
preloaded, before they import anything heavy. `VIDEOJAX_MALLOC=system` keeps glibc's malloc;
so does any LD_PRELOAD already set (the user's own choice of preloads stands).
"""
import importlib.metadata
import os
import pathlib
import re
import sys

OPT_OUT = "VIDEOJAX_MALLOC"
# Never hand freed pages back to the OS (mimalloc's default is after 10 ms).
SETTINGS = {"MIMALLOC_PURGE_DELAY": "-1"}


def mimalloc_library() -> pathlib.Path | None:
  """libmimalloc.so from the installed cmeel-mimalloc wheel, or None without it."""
  try:
    files = importlib.metadata.files("cmeel-mimalloc") or []
  except importlib.metadata.PackageNotFoundError:
    return None
  for f in sorted(files, key=str):
    if re.fullmatch(r"libmimalloc\.so(\.\d+)*", f.name):
      path = pathlib.Path(f.locate()).resolve()
      if path.is_file():
        return path
  return None


def tuned_environ(environ: dict[str, str], library: pathlib.Path | None) -> dict[str, str] | None:
  """The environment to restart with, or None where the process should be left as it is.

  None when: the user opted out, there is no library, or LD_PRELOAD is set already (by the
  user, or by the restart itself: a restarted process stops here).
  """
  if environ.get(OPT_OUT) == "system" or library is None or environ.get("LD_PRELOAD"):
    return None
  return {**SETTINGS, **environ, "LD_PRELOAD": str(library)}


def restart_with_mimalloc() -> None:
  """Re-executes this Python process once with mimalloc preloaded, on Linux.

  Call it first thing in a script, under `if __name__ == "__main__"`: whatever runs before
  it runs twice. The process keeps its PID, its arguments and the rest of its environment.
  Returns without doing anything where `tuned_environ` says so.
  """
  if not sys.platform.startswith("linux"):
    return
  env = tuned_environ(dict(os.environ), mimalloc_library())
  if env is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
