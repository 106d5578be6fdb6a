"""The best checkpoint of a training run, loaded and ready to apply to features.

Shared by evaluation (videojax.tools.evaluate) and prediction (videojax.tools.predict);
imports neither TensorFlow nor matplotlib, so both start quickly.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import jax

from videojax import models
from videojax.checkpoint import Checkpoints, check_finite
from videojax.normalization import normalize


@dataclasses.dataclass
class Run:
  """The best checkpoint of a run directory, ready to apply.

  Attributes:
    workdir: the run directory (scripts/train.py --workdir).
    step: the checkpoint step (best by the run's config.train.best_metric, else the latest).
    meta: what the run was trained on (videojax.train.run_meta).
    apply: jitted (features f16[b, t, d], mask bool[b, t]) -> probabilities f32[b, k].
    chosen: which step and why, e.g. 'step 12, best val_accuracy=0.8125'.
  """
  workdir: pathlib.Path
  step: int
  meta: dict
  apply: Any
  chosen: str = ""

  @property
  def class_names(self) -> list[str]:
    return list(self.meta["class_names"])


def load_run(workdir: str | os.PathLike) -> Run:
  """The best checkpoint of `workdir`, with its model jitted.

  A best step that cannot be read is skipped with a warning for the next best.

  Raises:
    FileNotFoundError: `workdir` has no readable checkpoint.
    NonFiniteCheckpoint: its parameters hold NaN/inf (a diverged run).
  """
  workdir = pathlib.Path(workdir)
  if not (workdir / "checkpoints").is_dir():
    raise FileNotFoundError(f"--workdir {workdir}: no checkpoints/ directory; train first "
                            "(scripts/train.py --workdir ...)")
  ckpts = Checkpoints(workdir / "checkpoints")
  try:
    if ckpts.latest_step() is None:
      raise FileNotFoundError(f"--workdir {workdir}: no checkpoint in {ckpts.directory}")
    step, state = ckpts.restore_best_raw()
    meta = ckpts.read_meta(step)
    chosen = ckpts.describe(step)
  finally:
    ckpts.close()
  check_finite(state, f"{ckpts.directory}/{step}")
  model = models.create_model(meta["model"], len(meta["class_names"]), **meta["model_kwargs"])
  frame_shape = models.model_frame_shape(
      meta["model"], models.feature_frame_shape(meta["feature_spec"], meta["feature_dim"]))
  model_apply = models.apply_to_flat(model, frame_shape)
  params, mean, std = state["params"], state["feature_mean"], state["feature_std"]
  # As in training (train.run_meta): absent, the saved statistics standardise (or, zeros
  # and ones, leave the features as they are).
  norm = meta.get("feature_norm", "standardize")

  @jax.jit
  def apply(features, mask):
    logits = model_apply({"params": params}, normalize(features, mask, norm, mean, std), mask,
                         train=False)
    return jax.nn.softmax(logits)

  return Run(workdir=workdir, step=int(step), meta=meta, apply=apply, chosen=chosen)
