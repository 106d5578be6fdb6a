"""Joining a multi-process (multi-host) run through `jax.distributed`.

Each process runs the same script. Where the settings come from, first found wins:

  1. flags:        --coordinator_address=host:port --num_processes=N --process_id=i
  2. environment:  JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID
  3. a SLURM job with more than one task (srun): JAX reads SLURM_* itself
  4. --multihost:  JAX's own cluster detection (Cloud TPU pod slices, Open MPI, Kubernetes)

With none of these the run is single-process and nothing is initialised. On CPU
the collectives go through gloo, so several local processes can stand in for
several hosts (that is how the tests run it).
"""
from __future__ import annotations

import os
import sys

import jax
from absl import flags

FLAG_NAMES = ("coordinator_address", "num_processes", "process_id", "multihost")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines --coordinator_address, --num_processes, --process_id and --multihost.

  For the scripts that join multi-host runs: call at the script's top level, beside its
  own flags (importing this module defines none). Calling it again changes nothing.
  """
  if FLAG_NAMES[0] in flag_values:
    return
  # Listed under the script's own flags in --help, not only in --helpfull.
  kw = {"flag_values": flag_values, "module_name": sys.argv[0]}
  flags.DEFINE_string(
      "coordinator_address", None,
      "host:port of process 0's coordinator, the same on every process (multi-host runs; "
      "default $JAX_COORDINATOR_ADDRESS).", **kw)
  flags.DEFINE_integer(
      "num_processes", None, "Number of processes in the run (default $JAX_NUM_PROCESSES).", **kw)
  flags.DEFINE_integer(
      "process_id", None,
      "This process's index in [0, num_processes) (default $JAX_PROCESS_ID).", **kw)
  flags.DEFINE_bool(
      "multihost", False,
      "Let JAX detect the cluster (Cloud TPU pod slice, Open MPI, Kubernetes); SLURM jobs with "
      "several tasks and the flags above need no --multihost.", **kw)


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value is None or value == "":
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"${name}={value!r} must be an integer") from None


def _slurm_tasks() -> int:
  """Tasks of the SLURM job this process runs in (1 outside SLURM)."""
  if "SLURM_JOB_ID" not in os.environ:
    return 1
  return _env_int("SLURM_NTASKS") or 1


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False) -> bool:
  """Initialises `jax.distributed` when a multi-process run is configured.

  Call before any JAX computation. Arguments left None fall back to the
  environment (see the module docstring).

  Args:
    coordinator_address: 'host:port' of process 0.
    num_processes: N >= 1.
    process_id: this process, in [0, N).
    auto: use JAX's cluster detection even without the settings above.

  Returns:
    True when this process joined a multi-process run.

  Raises:
    ValueError: settings given only in part, or out of range; the message
      names the flag and the environment variable.
  """
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  count = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
  index = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
  given = {"--coordinator_address / $JAX_COORDINATOR_ADDRESS": address,
           "--num_processes / $JAX_NUM_PROCESSES": count,
           "--process_id / $JAX_PROCESS_ID": index}
  if any(v is not None for v in given.values()):
    missing = [k for k, v in given.items() if v is None]
    if missing:
      raise ValueError(f"a multi-process run needs all three settings; missing {missing}")
    if count < 1 or not 0 <= index < count:
      raise ValueError(f"--process_id={index} must lie in [0, --num_processes={count})")
    if count == 1:
      return False
  elif not auto and _slurm_tasks() <= 1:
    return False
  # CPU collectives across processes; ignored by GPU and TPU backends.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(address, count, index)
  return True


def initialize_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> bool:
  """`initialize` with the flags of `define_flags` (call from a script's main).

  Raises:
    ValueError: as `initialize`; or `define_flags` was not called.
  """
  missing = [n for n in FLAG_NAMES if n not in flag_values]
  if missing:
    raise ValueError(f"flags {missing} are not defined: call distributed.define_flags() at "
                     "the script's top level")
  f = flag_values
  return initialize(f.coordinator_address, f.num_processes, f.process_id, f.multihost)
