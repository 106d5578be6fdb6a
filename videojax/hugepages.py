"""Huge pages for malloc, so that XLA's CPU temporaries stop page-faulting every step.

XLA's CPU runtime allocates one buffer for a step's temporaries with malloc, each
time the step runs: 92 MB for the bilstm_attention train step at b 32, t 64,
d 1280. glibc serves a block that large with a fresh mmap and unmaps it again on
free, so the kernel maps and zeroes it anew every step, one 4 KiB page at a time:
about 22,000 page faults a step, measured. glibc's tunable `glibc.malloc.hugetlb=1`
(glibc 2.35 and later) has malloc ask for transparent huge pages instead, 2 MiB a
fault; that step then ran 8-19 % faster on CPU (BENCHMARKS.md). Tunables are read
only when a process starts, so the scripts restart themselves once with it set,
before they import anything heavy. `VIDEOJAX_HUGEPAGES=0` turns this off.
"""
import os
import pathlib
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb"
OPT_OUT = "VIDEOJAX_HUGEPAGES"
THP_SETTING = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _glibc_at_least(libc: tuple[str, str], major: int, minor: int) -> bool:
  name, version = libc
  try:
    return name == "glibc" and tuple(int(v) for v in version.split(".")[:2]) >= (major, minor)
  except ValueError:
    return False


def _thp_available(setting: pathlib.Path = THP_SETTING) -> bool:
  """Whether the kernel grants transparent huge pages to madvise (its mode is not [never])."""
  try:
    return "[never]" not in setting.read_text()
  except OSError:
    return False


def tuned_environ(environ: dict[str, str], libc: tuple[str, str],
                  thp_available: bool) -> dict[str, str] | None:
  """The environment to restart with, or None where a restart would change nothing.

  None when: the user opted out, libc is not glibc 2.35+, the kernel has no
  transparent huge pages, or GLIBC_TUNABLES already sets the tunable (to any value:
  the user's choice wins, and a restarted process stops here).
  """
  if environ.get(OPT_OUT) == "0" or not thp_available or not _glibc_at_least(libc, 2, 35):
    return None
  tunables = environ.get("GLIBC_TUNABLES", "")
  if any(t.split("=")[0] == TUNABLE for t in tunables.split(":")):
    return None
  env = dict(environ)
  env["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}=1" if tunables else f"{TUNABLE}=1"
  return env


def restart_with_hugepages() -> None:
  """Re-executes this Python process once with `glibc.malloc.hugetlb=1`, where it helps.

  Call it first thing in a script: everything before it runs twice. The process
  keeps its PID, arguments and the rest of its environment. Returns without doing
  anything where `tuned_environ` says so.
  """
  env = tuned_environ(dict(os.environ), platform.libc_ver(), _thp_available())
  if env is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
