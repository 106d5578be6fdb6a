"""What a run's workdir records so that it can be reproduced from the folder alone.

  provenance.write_run_files(workdir, config)   # config.json and environment.json

config.json is the resolved config (after variants and --config.* overrides), nested
as the ConfigDict, readable back with `load_config`. environment.json says what ran it:
the versions of Python and of the libraries whose changes move results, the devices,
the process count, the git revision of the code (with whether it had uncommitted
changes; null outside a git checkout), the command line and the time. Both are
rewritten at every (re)start of the run; a resumed run's config equals the first
(videojax.checkpoint refuses another).
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import pathlib
import platform as platform_lib
import shlex
import subprocess
import sys
from typing import Any

import ml_collections

from videojax.files import write_json_atomic

# Distribution names per library: the first one installed is reported.
LIBRARIES = {"jax": ("jax",), "jaxlib": ("jaxlib",), "flax": ("flax",), "optax": ("optax",),
             "orbax-checkpoint": ("orbax-checkpoint",),
             "tensorflow": ("tensorflow", "tensorflow-cpu"), "numpy": ("numpy",),
             "ml-collections": ("ml-collections", "ml_collections")}


def flat_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """{dotted key: JSON value} of every leaf of `config` (tuples become lists)."""
  out = {}

  def walk(node, prefix):
    for k in sorted(node.keys()):
      v = node[k]
      if isinstance(v, ml_collections.ConfigDict):
        walk(v, f"{prefix}{k}.")
      else:
        out[f"{prefix}{k}"] = json.loads(json.dumps(v, default=str))
  walk(config, "")
  return out


def config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as nested JSON values (tuples become lists)."""
  return json.loads(json.dumps(config.to_dict(), default=str))


def load_config(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """A config.json written by `write_run_files`, as a ConfigDict (lists where tuples were)."""
  return ml_collections.ConfigDict(json.loads(pathlib.Path(path).read_text()))


def _version(distributions: tuple[str, ...]) -> str | None:
  for name in distributions:
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      continue
  return None


def git_revision(directory: str | os.PathLike | None = None) -> dict[str, Any] | None:
  """{'revision': commit hash, 'dirty': uncommitted changes to tracked files} of the git
  checkout holding `directory` (default: this package's source), or None where there is
  none (an installed wheel, no git)."""
  directory = directory or pathlib.Path(__file__).parent
  try:
    run = lambda *args: subprocess.run(["git", "-C", str(directory), *args],
                                       capture_output=True, text=True, timeout=10)
    head = run("rev-parse", "HEAD")
    if head.returncode:
      return None
    status = run("status", "--porcelain", "--untracked-files=no")
  except (OSError, subprocess.SubprocessError):
    return None
  return {"revision": head.stdout.strip(),
          "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def environment() -> dict[str, Any]:
  """Versions, devices, processes, git revision and command line of this process."""
  import jax  # Here: the device query initialises JAX's backends.

  devices = jax.devices()
  return {
      "python": sys.version.split()[0],
      "versions": {name: _version(dists) for name, dists in LIBRARIES.items()},
      "platform": platform_lib.platform(),
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "local_device_count": jax.local_device_count(),
      "process_count": jax.process_count(),
      "git": git_revision(),
      "command": shlex.join([sys.executable, *sys.argv]),
      "cwd": os.getcwd(),
      "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def write_run_files(workdir: str | os.PathLike, config: ml_collections.ConfigDict,
                    **extra: Any) -> dict[str, Any]:
  """Writes `workdir`/config.json and `workdir`/environment.json (with `extra`), atomically.

  Returns:
    The environment written.
  """
  workdir = pathlib.Path(workdir)
  write_json_atomic(workdir / "config.json", config_dict(config))
  env = {**environment(), **extra}
  write_json_atomic(workdir / "environment.json", env)
  return env
