"""One training run per workdir: an exclusive lock that names its holder.

`fcntl.flock` on `<workdir>/.lock`: the kernel releases it when the holder
exits, however it dies (kill -9 included), so a stale lock is simply taken
over. The file keeps the holder's pid, host and start time for the refusal
message; it is never deleted (deleting a lock file lets two holders lock two files).

A workdir on an object store (gs://...) has no file locks: it is not locked, and
keeping one run per such workdir is up to the user.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import os
import socket

from videojax import files
from videojax.errors import UserError

LOCK_NAME = ".lock"


class WorkdirInUse(UserError, OSError):
  """Another process holds the workdir's lock; the message names it."""


class WorkdirLock:
  """Context manager: holds `<workdir>/.lock` exclusively, or raises WorkdirInUse.

  Raises (on entry):
    WorkdirInUse: another live process holds it: "<workdir> is in use by pid N
      on host H since T; wait for it or use another --workdir".
  """

  def __init__(self, workdir: str | os.PathLike):
    self.workdir = files.path(workdir)
    self.path = self.workdir / LOCK_NAME
    self._fd: int | None = None

  def acquire(self) -> None:
    self.workdir.mkdir(parents=True, exist_ok=True)
    if files.is_url(self.workdir):  # No flock on an object store (module docstring).
      return
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
      os.close(fd)
      err = WorkdirInUse(f"{self.workdir} is in use by {holder}; wait for it or use "
                         "another --workdir")
      err.errno = errno.EBUSY  # Set after: OSError(errno, msg) would print "[Errno 16] ...".
      raise err from None
    since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since {since}\n".encode(),
              0)
    self._fd = fd

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()
