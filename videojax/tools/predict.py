"""Top-k classes of any video file, from a trained run directory."""
from __future__ import annotations

import pathlib
import sys
from collections.abc import Sequence

import numpy as np

from videojax import sharding
from videojax.data import features as features_lib
from videojax.data.video import VideoError
from videojax.extract import BACKBONE_FILE, FramePacker, frame_encoder, read_views
from videojax.runs import load_run


class Predictor:
  """Embeds a clip with the run's backbone and classifies it with its best checkpoint.

  Raises (at construction):
    FileNotFoundError: no checkpoint in `workdir` (`runs.load_run`), or the
      backbone file of the features the run was trained on is gone.
    ValueError: the run was trained on imported features (no backbone).
  """

  def __init__(self, workdir: str | pathlib.Path):
    run = load_run(workdir)
    self.meta = meta = run.meta
    self.class_names: list[str] = run.class_names
    self.chosen = f"{run.workdir}: {run.chosen}"  # Which checkpoint answers, for the user.
    self.spec = meta["feature_spec"]
    if self.spec.get("backbone") == "imported":
      raise ValueError(f"{workdir} was trained on features imported from "
                       f"{self.spec.get('source')}; it has no backbone to embed video files "
                       "with. Predict on features made the same way instead.")
    # The workdir's copy of the backbone (runs.keep_backbone), else its features dir's.
    backbone_dir = run.backbone_dir
    if "backbone" in self.spec and not (backbone_dir / BACKBONE_FILE).exists():
      raise FileNotFoundError(f"{backbone_dir / BACKBONE_FILE}: the backbone that made this "
                              f"run's features is missing, and {workdir} holds no copy "
                              f"(run {workdir} was trained on {meta['features_dir']})")
    self._embed, self._dim = frame_encoder(self.spec, backbone_dir,
                                           sharding.make_mesh(1, local=True))
    self._apply = run.apply

  def probabilities(self, path: str | pathlib.Path) -> np.ndarray:
    """f32[k] class probabilities of one video file; VideoError if it can't be read."""
    t, size = self.spec["num_frames"], self.spec["image_size"]
    frames, frame_of, length = read_views(path, self.spec)
    # As extraction: every view's frames, averaged per position, stored float16.
    views = len(frame_of)  # A fixed batch of t * views frames: one compile.
    packer = FramePacker(self._embed, t * views, 1, t, size, self._dim)
    packer.add(0, frames, frame_of)
    packer.flush()
    feats = packer.features[0].astype(np.float16).astype(np.float32)
    if not np.isfinite(feats[:length]).all():
      raise features_lib.FeatureError(f"{path}: backbone features are NaN/inf")
    mask = np.arange(t) < length
    return np.asarray(self._apply(feats[None], mask[None]))[0]

  def top_k(self, path: str | pathlib.Path, k: int = 5) -> list[tuple[str, float]]:
    probs = self.probabilities(path)
    order = np.argsort(-probs)[:k]
    return [(self.class_names[i], float(probs[i])) for i in order]


def print_top_k(workdir: str | pathlib.Path, paths: Sequence[str], top_k: int = 5) -> int:
  """scripts/predict.py: each video's top-k classes on stdout, one block per video.

  A video that cannot be read prints `<path>: error: ...` and the others go on.
  Returns the exit status: 1 if any video failed, else 0.
  """
  predictor = Predictor(workdir)
  print(predictor.chosen, file=sys.stderr)  # stderr: stdout stays one block per video.
  status = 0
  for path in paths:
    try:
      top = predictor.top_k(path, top_k)
    except VideoError as e:
      print(f"{path}: error: {e}")
      status = 1
      continue
    print(path)
    for name, p in top:
      print(f"  {p:7.2%}  {name}")
  return status
