"""The best checkpoint of a training run, loaded and ready to apply to features.

Shared by evaluation (videojax.tools.evaluate) and prediction (videojax.tools.predict);
imports neither TensorFlow nor matplotlib, so both start quickly.

A workdir is portable: the checkpoint holds the parameters and the normaliser's
statistics, its meta the class names, model, feature spec and the features dir (absolute,
and relative to the workdir), and training keeps a copy of the backbone that made the
features (`keep_backbone`). A moved or copied workdir finds its features again where they
moved with it (`Run.features_dir`), or is told where they are (evaluate --features_dir).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
from typing import Any

import jax

from videojax import files, models
from videojax.checkpoint import Checkpoints, check_finite
from videojax.data.features import BACKBONE_FILE
from videojax.normalization import normalize


def features_dir_meta(features_dir: str | os.PathLike, workdir: str | os.PathLike) -> dict:
  """{'features_dir': absolute path, 'features_dir_relative': the path from `workdir`}.

  The relative path finds the features again after the workdir and the features
  moved together (e.g. the demo's runs/demo/{features,gru}); the absolute one after
  the workdir alone moved or was copied.
  """
  features_dir = files.absolute(features_dir)
  if files.is_url(features_dir) or files.is_url(workdir):
    return {"features_dir": str(features_dir)}
  return {"features_dir": str(features_dir),
          "features_dir_relative": os.path.relpath(features_dir, pathlib.Path(workdir).absolute())}


def keep_backbone(features_dir: str | os.PathLike, workdir: str | os.PathLike) -> None:
  """Puts the backbone that made the features into the workdir (a hard link, else a copy),
  so that predict embeds new videos with it wherever the workdir goes. Nothing for
  features without one (imported, raw pixels)."""
  src, dst = files.path(features_dir) / BACKBONE_FILE, files.path(workdir) / BACKBONE_FILE
  if not src.is_file() or dst.exists():
    return
  if files.is_url(src) or files.is_url(dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return
  dst.parent.mkdir(parents=True, exist_ok=True)
  tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
  try:
    try:
      os.link(src, tmp)
    except OSError:  # Another file system, or no hard links there.
      shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
  finally:
    tmp.unlink(missing_ok=True)


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
  workdir: files.AnyPath
  step: int
  meta: dict
  apply: Any
  chosen: str = ""

  @property
  def class_names(self) -> list[str]:
    return list(self.meta["class_names"])

  @property
  def features_dir(self) -> files.AnyPath:
    """The run's own features: where they moved with the workdir, else where they were.

    The path relative to the workdir first (recorded since runs are portable), if a
    directory is there; else the absolute path recorded at training.
    """
    relative = self.meta.get("features_dir_relative")
    if relative is not None and (self.workdir / relative).is_dir():
      return pathlib.Path(os.path.normpath(self.workdir.absolute() / relative))
    return files.path(self.meta["features_dir"])

  @property
  def backbone_dir(self) -> files.AnyPath:
    """Where the backbone file of the run's features is: the workdir's copy, else its
    features dir (runs trained before the copy)."""
    return self.workdir if (self.workdir / BACKBONE_FILE).is_file() else self.features_dir


def load_run(workdir: str | os.PathLike) -> Run:
  """The best checkpoint of `workdir`, with its model jitted.

  A best step that cannot be read is skipped with a warning for the next best.

  Raises:
    FileNotFoundError: `workdir` has no readable checkpoint.
    NonFiniteCheckpoint: its parameters hold NaN/inf (a diverged run).
  """
  workdir = files.path(workdir)
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
