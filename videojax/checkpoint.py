"""Orbax checkpoints of a training run: the latest step and the best by a validation metric.

Each step directory holds `state` (the TrainState pytree) and `meta` (JSON that
says what the state belongs to: classes, model, features, and the step's
validation metrics with the rule that ranks them). Orbax writes into a
temporary directory and renames it when finished, so a step that exists was
whole when written; one damaged later (files deleted) is set aside on resume.

Why not orbax's BestN policy: orbax writes a step's metrics only when the manager
has `best_fn`, which a `preservation_policy` excludes, so BestN saw no metrics and
deleted the best step. The metrics live in `meta` instead, and this class keeps
the latest and the best step itself, deleting others only after a save is whole.
"""
from __future__ import annotations

import errno
import math
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from videojax import files
from videojax.errors import UserError

METRICS = ("val_accuracy", "val_loss")
MODES = ("max", "min")
_TMP_SUFFIX = ".orbax-checkpoint-tmp"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # no space; over the user's quota


class CheckpointMismatch(ValueError):
  """A checkpoint that belongs to another configuration than the one asked for."""


class NonFiniteCheckpoint(ValueError):
  """A checkpoint whose parameters hold NaN or inf."""


class DiskFull(UserError, OSError):
  """No space left to write a checkpoint or a log; the message names the path and the size."""


def check_rule(metric: str, mode: str) -> None:
  """Raises ValueError naming config.train.best_metric / best_mode when not accepted."""
  if metric not in METRICS:
    raise ValueError(f"config.train.best_metric={metric!r}; accepted: {', '.join(METRICS)}")
  if mode not in MODES:
    raise ValueError(f"config.train.best_mode={mode!r}; accepted: {', '.join(MODES)}")


def _warn(message: str) -> None:
  print(f"Warning: {message}", file=sys.stderr, flush=True)


def _first_line(e: BaseException) -> str:
  return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"


def _is_disk_full(e: BaseException) -> bool:
  """True if `e` or an exception it came from is ENOSPC/EDQUOT (orbax/tensorstore wrap it)."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if (getattr(e, "errno", None) in DISK_FULL_ERRNOS
        or any(os.strerror(n) in str(e) for n in DISK_FULL_ERRNOS)):
      return True
    e = e.__cause__ or e.__context__
  return False


def _tree_bytes(tree: Any) -> int:
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
             for x in jax.tree.leaves(tree) if hasattr(x, "shape"))


def _dir_bytes(path: pathlib.Path) -> int:
  """Disk space taken by the files under `path`, as du counts it (whole blocks: many are tiny)."""
  return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def disk_full_error(path: str | os.PathLike, needed: int) -> DiskFull:
  """The one-line DiskFull for a failed write of about `needed` bytes under `path`.

  The cause (orbax's or the OS's error, many lines) stays in __cause__ for --debug.
  """
  path = pathlib.Path(path)
  try:
    free = shutil.disk_usage(path if path.exists() else path.parent).free
    free_text = f", {free / 2**20:.2f} MiB free"
  except OSError:
    free_text = ""
  err = DiskFull(f"no space left on the device of {path}: about {needed / 2**20:.2f} MiB "
                 f"needed{free_text}; free some space, or use another --workdir")
  err.errno = errno.ENOSPC  # Set after: OSError(errno, msg) would print "[Errno 28] ...".
  return err


class Checkpoints:
  """The checkpoints of one run directory: the latest step and the best.

  The best is the step whose validation `metric` is highest (`mode`='max') or
  lowest ('min'); ties go to the later step. Steps saved without metrics
  (mid-epoch, or no validation split) count as latest only. Without `metric`,
  the rule is the one recorded in the newest step (val_accuracy/max if none):
  how evaluate and predict find the step that training chose.
  """

  def __init__(self, directory: str | os.PathLike, metric: str | None = None,
               mode: str | None = None, warn: Callable[[str], None] = _warn):
    self.directory = files.absolute(directory)  # orbax takes a URL (gs://...) as epath.
    self._warn = warn
    # No preservation policy: orbax keeps every step; `_prune` deletes.
    self._manager = ocp.CheckpointManager(
        self.directory,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(create=True))
    self._metrics: dict[int, dict | None] = {
        step: self._read_metrics(step) for step in self._manager.all_steps()}
    if metric is None:
      latest = self._read_meta_or_none(self.latest_step()) if self.latest_step() else None
      metric = (latest or {}).get("best_metric", "val_accuracy")
      mode = (latest or {}).get("best_mode", "max")
    check_rule(metric, mode or "max")
    self.metric, self.mode = metric, mode or "max"
    self._state_bytes = 0

  def _read_meta_or_none(self, step: int) -> dict | None:
    try:
      return self.read_meta(step)
    except Exception:  # A damaged step: it has no metrics; resume sets it aside.
      return None

  def _read_metrics(self, step: int) -> dict | None:
    return (self._read_meta_or_none(step) or {}).get("metrics")

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def metrics(self, step: int) -> dict | None:
    """The validation metrics saved with `step` ({'val_accuracy', 'val_loss'}), or None."""
    return self._metrics.get(step)

  def score(self, step: int) -> float | None:
    """The step's value of the ranking metric; None if not recorded or not finite."""
    value = (self._metrics.get(step) or {}).get(self.metric)
    return float(value) if value is not None and math.isfinite(value) else None

  def ranked_steps(self) -> list[int]:
    """Steps with a score, best first (ties: the later step first)."""
    sign = 1.0 if self.mode == "max" else -1.0
    scored = [(sign * self.score(s), s) for s in self.all_steps() if self.score(s) is not None]
    return [s for _, s in sorted(scored, reverse=True)]

  def best_step(self) -> int | None:
    """The step with the best validation metric, else the latest."""
    ranked = self.ranked_steps()
    return ranked[0] if ranked else self.latest_step()

  def describe(self, step: int) -> str:
    """E.g. 'step 12, best val_accuracy=0.8125', or 'step 12, no validation metric'."""
    score = self.score(step)
    if score is None:
      return f"step {step}, no validation metric"
    return f"step {step}, best {self.metric}={score:.4f}"

  def save(self, step: int, state: Any, meta: Mapping[str, Any],
           metrics: Mapping[str, float] | None = None) -> None:
    """Starts writing `step` (asynchronously) once the previous save is whole.

    Raises:
      DiskFull: the previous or this save ran out of space; its temporary
        files are removed, the steps already whole are kept.
    """
    self.wait()
    metrics = {k: float(v) for k, v in metrics.items()} if metrics else None
    meta = {**meta, "metrics": metrics, "best_metric": self.metric, "best_mode": self.mode}
    self._state_bytes = _tree_bytes(state)
    try:
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    except Exception as e:
      self._fail(e)
    self._metrics[step] = metrics

  def wait(self) -> None:
    """Waits for the save in flight; then deletes steps that are neither latest nor best."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:
      self._fail(e)
    self._prune()

  def _fail(self, e: Exception) -> None:
    """Removes the temporary files of a failed save, then raises (DiskFull when ENOSPC)."""
    self._remove_tmp()
    self._manager.reload()
    self._metrics = {s: m for s, m in self._metrics.items() if s in self._manager.all_steps()}
    if _is_disk_full(e):
      # A step takes about what the last whole one took (the arrays plus orbax's metadata).
      last = self.latest_step()
      needed = max(self._state_bytes, _dir_bytes(self.directory / str(last)) if last else 0)
      raise disk_full_error(self.directory, needed) from e
    raise e

  def _remove_tmp(self) -> None:
    if jax.process_index() == 0:
      for tmp in self.directory.glob(f"*{_TMP_SUFFIX}*"):
        shutil.rmtree(tmp, ignore_errors=True)

  def _prune(self) -> None:
    """Deletes every step but the latest and the best; call only when no save is in flight."""
    steps = self.all_steps()
    if not steps:
      return
    keep = {steps[-1], self.best_step()}
    for step in steps:
      if step not in keep:
        self._manager.delete(step)
        self._metrics.pop(step, None)

  def read_meta(self, step: int) -> dict:
    return dict(self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])

  def restore(self, step: int, abstract_state: Any) -> Any:
    """The state at `step`, laid out like `abstract_state` (arrays or ShapeDtypeStructs)."""
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    return self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))["state"]

  def restore_raw(self, step: int) -> Any:
    """The state at `step` as saved (nested dicts), on one local device.

    Works whatever device topology the checkpoint was written with.
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          self._manager.item_metadata(step)["state"])
    return self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))["state"]

  def resume(self, abstract_state: Any,
             check: Callable[[dict], None]) -> tuple[int, Any] | tuple[int, None]:
    """The newest whole step and its state, or (0, None) when there is none.

    A step that cannot be read (files deleted by hand, say) is moved aside to
    `damaged-<step>-<time>` with a warning, so that training can save that step
    number again; the next older step is tried.

    Args:
      abstract_state: the layout to restore into (see `restore`).
      check: called with each candidate's meta; raises CheckpointMismatch to refuse.
    """
    for step in reversed(self.all_steps()):
      try:
        meta = self.read_meta(step)
      except Exception as e:
        self._set_aside(step, e)
        continue
      check(meta)
      try:
        return step, self.restore(step, abstract_state)
      except Exception as e:
        self._set_aside(step, e)
    return 0, None

  def _set_aside(self, step: int, e: Exception) -> None:
    aside = self.directory / f"damaged-{step}-{time.strftime('%Y%m%dT%H%M%S')}"
    self._warn(f"{self.directory}/{step} is damaged ({_first_line(e)}); moved it to {aside} "
               "and fell back to the step before it")
    if jax.process_index() == 0:
      (self.directory / str(step)).rename(aside)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f"videojax set aside {step}")
    self._manager.reload()
    self._metrics.pop(step, None)

  def restore_best_raw(self) -> tuple[int, Any]:
    """The best whole step and its raw state (`restore_raw`); falls back down the ranking.

    Raises:
      FileNotFoundError: no step can be read.
    """
    candidates = self.ranked_steps()
    candidates += [s for s in reversed(self.all_steps()) if s not in candidates]
    for step in candidates:
      try:
        return step, self.restore_raw(step)
      except Exception as e:
        self._warn(f"{self.directory}/{step} cannot be read ({_first_line(e)}); "
                   "trying the next step")
    raise FileNotFoundError(f"{self.directory}: no checkpoint can be read; train first "
                            "(scripts/train.py --workdir ...)")

  def close(self) -> None:
    self._manager.close()


def check_finite(state: Any, where: str) -> None:
  """Raises NonFiniteCheckpoint if any floating array of `state` holds NaN or inf."""
  bad = [jax.tree_util.keystr(path) for path, x in jax.tree_util.tree_leaves_with_path(state)
         if np.issubdtype(np.asarray(x).dtype, np.floating) and not np.isfinite(x).all()]
  bad.sort(key=lambda p: not p.startswith("['params']"))  # Name a parameter first.
  if bad:
    raise NonFiniteCheckpoint(f"{where} holds NaN/inf parameters ({bad[0]}"
                              + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                              + "); the run diverged: retrain with a lower "
                              "train.learning_rate in a new --workdir")


def check_meta(expected: Mapping[str, Any], found: Mapping[str, Any], where: str,
               keys: tuple[str, ...]) -> None:
  """Raises CheckpointMismatch naming each of `keys` on which the two differ."""
  diffs = [f"{k}: this run has {expected.get(k)!r}, the checkpoint {found.get(k)!r}"
           for k in keys if expected.get(k) != found.get(k)]
  if diffs:
    raise CheckpointMismatch(f"{where} was written by another configuration: "
                             + "; ".join(diffs)
                             + ". Use a new --workdir, or the config it was made with.")
