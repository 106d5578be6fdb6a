"""Orbax checkpoints of a training run: the latest and the best by validation accuracy.

Each step directory holds `state` (the TrainState pytree) and `meta` (JSON that
says what the state belongs to: classes, model, features). Orbax writes into a
temporary directory and renames it when finished, so a step that exists is whole.
"""
from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp

METRIC = "val_accuracy"


class CheckpointMismatch(ValueError):
  """A checkpoint that belongs to another configuration than the one asked for."""


class Checkpoints:
  """The checkpoints of one run directory.

  Keeps the most recent step and the step with the highest `val_accuracy`
  (ties go to the later step); steps saved without metrics count as latest only.
  """

  def __init__(self, directory: str | os.PathLike):
    self.directory = pathlib.Path(directory).absolute()
    policy = ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(n=1),
        ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: m[METRIC], n=1,
                                      keep_checkpoints_without_metrics=False),
    ])
    self._manager = ocp.CheckpointManager(
        self.directory,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the highest validation accuracy, else the latest."""
    scored = []
    for step in self._manager.all_steps():
      metrics = self._manager.metrics(step)
      if metrics and metrics.get(METRIC) is not None:
        scored.append((metrics[METRIC], step))
    return max(scored)[1] if scored else self.latest_step()

  def save(self, step: int, state: Any, meta: Mapping[str, Any],
           metrics: Mapping[str, float] | None = None) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta))),
        metrics=dict(metrics) if metrics else None)

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

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def check_meta(expected: Mapping[str, Any], found: Mapping[str, Any], where: str,
               keys: tuple[str, ...]) -> None:
  """Raises CheckpointMismatch naming each of `keys` on which the two differ."""
  diffs = [f"{k}: this run has {expected.get(k)!r}, the checkpoint {found.get(k)!r}"
           for k in keys if expected.get(k) != found.get(k)]
  if diffs:
    raise CheckpointMismatch(f"{where} was written by another configuration: "
                             + "; ".join(diffs)
                             + ". Use a new --workdir, or the config it was made with.")
