"""The entry point of every script: user errors as one line, bugs with their traceback.

  from videojax import cli
  ...
  if __name__ == "__main__":
    cli.run(main)          # instead of absl's app.run(main)

A user error (see `is_user_error`) prints `error: <message>` to stderr and exits
with status 1, without a traceback; `--debug` or the environment variable
VIDEOJAX_DEBUG=1 shows the traceback instead. Anything else is a bug and keeps
its traceback. absl's UsageError keeps absl's handling (usage, then exit 1).
"""
from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from absl import app, flags

from videojax import errors
from videojax.errors import UserError

DEBUG_ENV = "VIDEOJAX_DEBUG"
# Disk problems the user fixes (space, quota, permissions, a read-only mount), not bugs.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


def is_user_error(e: BaseException) -> bool:
  """Whether `e` is a problem of the user's input or machine rather than a bug.

  ValueError (and its subclasses FeatureError, CheckpointMismatch, ConfigError,
  ...), FileNotFoundError, videojax.errors.UserError, and OSError for a full disk,
  a quota, a permission or a read-only file system. absl's UsageError is left
  to absl.
  """
  if isinstance(e, app.UsageError):
    return False
  if isinstance(e, (ValueError, FileNotFoundError, UserError)):
    return True
  return isinstance(e, OSError) and e.errno in DISK_ERRNOS


def one_line(e: BaseException) -> str:
  """`error: <message>`, the message's lines joined, for stderr."""
  message = errors.message(e)
  if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.filename:
    message = message if str(e.filename) in message else f"{message}: {e.filename}"
  return f"error: {message}"


def debug_requested() -> bool:
  """--debug, or VIDEOJAX_DEBUG set to anything but '', '0' or 'false'."""
  if os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no"):
    return True
  return "debug" in flags.FLAGS and flags.FLAGS.is_parsed() and bool(flags.FLAGS.debug)


def call_main(main: Callable[[Sequence[str]], Any], argv: Sequence[str]) -> Any:
  """main(argv), with a user error turned into one line on stderr and SystemExit(1).

  Raises:
    SystemExit(1): after printing a user error (unless debug_requested()).
    Any other exception of main, unchanged.
  """
  try:
    return main(argv)
  except Exception as e:  # noqa: BLE001  Sorted below: only user errors are caught.
    if not is_user_error(e) or debug_requested():
      raise
    sys.stdout.flush()  # The error comes after what main printed.
    print(one_line(e), file=sys.stderr, flush=True)
    raise SystemExit(1) from None


def parse_flags(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
  """absl's flag parsing, with a user error behind a flag (a bad `--config=file.py:variant`,
  a config file that fails) printed as one line and SystemExit(1); other flag errors as absl."""
  try:
    return flag_values(argv)
  except flags.Error as e:
    # The deepest user error of the chain: config_flags wraps the config file's own
    # exception in one whose message is a formatted traceback.
    cause, link = None, e.__cause__ or e.__context__
    while link is not None:
      cause = link if is_user_error(link) else cause
      link = link.__cause__ or link.__context__
    if cause is None or debug_requested():
      return app.parse_flags_with_usage(argv)  # absl's message and exit code
    print(one_line(cause), file=sys.stderr, flush=True)
    raise SystemExit(1) from None


def line_buffer(stream=None) -> None:
  """Makes `stream` (default sys.stdout) flush at every newline.

  Why: under nohup, SLURM or CI stdout is a file, block-buffered, so an epoch's line
  would wait in the buffer for minutes; line-buffered, each reaches the log as printed.
  """
  stream = sys.stdout if stream is None else stream
  if hasattr(stream, "reconfigure"):  # Not where a caller replaced it (pytest's capture).
    stream.reconfigure(line_buffering=True)


def run(main: Callable[[Sequence[str]], Any]) -> None:
  """absl's app.run(main) with `--debug` defined, user errors as one line (call_main) and
  stdout line-buffered (line_buffer)."""
  line_buffer()
  if "debug" not in flags.FLAGS:
    # Listed with the script's own flags (--help), not only under --helpfull.
    flags.DEFINE_bool("debug", False, "Show the traceback of an error (also: environment "
                      f"{DEBUG_ENV}=1). Without it, an error that you can fix prints one line.",
                      module_name=sys.argv[0])
  app.run(lambda argv: call_main(main, argv), flags_parser=parse_flags)
