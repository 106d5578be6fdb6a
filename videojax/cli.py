"""The entry point of every script: user errors as one line, bugs with their traceback.

  from videojax import cli
  ...
  if __name__ == "__main__":
    cli.run(main)          # instead of absl's app.run(main)

A user error (see `is_user_error`) prints `error: <message>` to stderr and exits
with status 1, without a traceback; `--debug` or the environment variable
VIDEOJAX_DEBUG=1 shows the traceback instead. Anything else is a bug and keeps
its traceback. absl's UsageError keeps absl's handling (usage, then exit 1).

Scripts run from any directory: their default `--config` is `config_file(name)`
(this checkout's configs/), and a relative `--config=configs/x.py[:variant]` not
found from the working directory is read from the checkout (`resolve_config`).
One name per concept across scripts: --config, --workdir (the folder a job owns
and resumes in), --features_dir, --split(s), --out (a one-shot's result folder).
A renamed flag still works for a while: `cli.run(main, renamed={"dir": "workdir"})`
rewrites it with a warning (`rename_flags`); one that became a config key is refused
with an error that names the key.
"""
from __future__ import annotations

import errno
import os
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from absl import app, flags

from videojax import errors
from videojax.errors import UserError

DEBUG_ENV = "VIDEOJAX_DEBUG"
ROOT = pathlib.Path(__file__).resolve().parents[1]  # The checkout: configs/, scripts/.
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


def config_file(name: str) -> str:
  """The absolute path of this checkout's configs/<name>: a default --config for any cwd."""
  return str(ROOT / "configs" / name)


def resolve_config(value: str) -> str:
  """`file.py[:variant]`, with a relative file that the cwd lacks taken from the checkout."""
  path, sep, variant = value.partition(":")
  if path and not os.path.isabs(path) and not os.path.exists(path) and (ROOT / path).is_file():
    return f"{ROOT / path}{sep}{variant}"
  return value


def rename_flags(argv: Sequence[str], renamed: Mapping[str, str] | None = None) -> list[str]:
  """argv with each `--old[=v]` of `renamed` ({old: new}) as `--new[=v]` (a warning on
  stderr for each) and the --config file resolved (`resolve_config`); '--' ends flags.

  Raises:
    UserError: an old name whose new one is a config key (`--config.a.b`): ml_collections
      reads those from sys.argv itself, so they cannot be rewritten; the message names it.
  """
  out, renamed, config_value_next = list(argv[:1]), renamed or {}, False
  for i, arg in enumerate(argv[1:], 1):
    if arg == "--":
      return out + list(argv[i:])
    if config_value_next:
      arg, config_value_next = resolve_config(arg), False
    elif arg.startswith("-") and not arg.startswith("---"):
      dashes = "--" if arg.startswith("--") else "-"
      name, eq, value = arg[len(dashes):].partition("=")
      if name in renamed:
        new = renamed[name]
        if new.startswith("config."):
          raise UserError(f"--{name} is now --{new} (e.g. --{new}={value or '...'})")
        print(f"warning: --{name} is deprecated; use --{new}", file=sys.stderr, flush=True)
        name = new
        arg = f"--{new}{eq}{value}"
      if name == "config":
        if eq:
          arg = f"{dashes}config={resolve_config(value)}"
        else:
          config_value_next = True
    out.append(arg)
  return out


def run(main: Callable[[Sequence[str]], Any], renamed: Mapping[str, str] | None = None) -> None:
  """absl's app.run(main) with `--debug` defined and user errors as one line (call_main).

  Args:
    main: the script's main(argv).
    renamed: {old flag name: new name}: old names still accepted, with a warning.

  stdout is line-buffered (line_buffer).
  """
  line_buffer()
  if "debug" not in flags.FLAGS:
    # Listed with the script's own flags (--help), not only under --helpfull.
    flags.DEFINE_bool("debug", False, "Show the traceback of an error (also: environment "
                      f"{DEBUG_ENV}=1). Without it, an error that you can fix prints one line.",
                      module_name=sys.argv[0])

  def parse(argv: Sequence[str]) -> list[str]:
    try:
      argv = rename_flags(argv, renamed)
    except UserError as e:
      print(one_line(e), file=sys.stderr, flush=True)
      raise SystemExit(1) from None
    return parse_flags(argv)

  app.run(lambda argv: call_main(main, argv), flags_parser=parse)
