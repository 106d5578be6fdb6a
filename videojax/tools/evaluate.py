"""Evaluation of trained runs on a split of features: metrics, test-time views, ensembles.

`evaluate(workdirs, out_dir)` loads the best checkpoint of each run, applies it
jitted on one device to every view (videojax.tools.tta) of the split's clips, averages
the probabilities over views and then over runs, and writes the metrics of
videojax.metrics with the probabilities they came from.

Runs of an ensemble may differ in model and in features (another backbone,
another crop) but must agree on the class list and on the clips: their
probabilities are aligned by video_id.
"""
from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from videojax import files
from videojax import metrics as metrics_lib
from videojax.tools import plots
from videojax.tools import tta as tta_lib
from videojax.data import features as features_lib
from videojax.data import parts as parts_lib
from videojax.files import write_json_atomic
from videojax.progress import Progress
from videojax.runs import Run, load_run  # noqa: F401 (load_run is part of this API)

# Spec keys that fix what each feature dimension means: a features dir given to
# a run in place of its own must agree on them (it may differ in crop, image size...).
SAME_FEATURE_KEYS = ("backbone", "weights", "weights_sha256", "pooling", "grid_size")
# Spec keys that fix which clips are test clips (extraction: split and sources.split_spec;
# import: the split lists): features of another split may hold the run's training clips.
SAME_SPLIT_KEYS = ("split", "layout", "test_fraction", "split_seed", "tfds_config", "labels")


class EnsembleMismatch(ValueError):
  """Runs that cannot be averaged: other classes or other clips."""


def _spec_diffs(run_spec: dict, spec: dict, keys) -> list[str]:
  """'key: run X, features Y' for each of `keys` on which the two specs differ."""
  return [f"{k}: run {run_spec.get(k)!r}, features {spec.get(k)!r}" for k in keys
          if run_spec.get(k) != spec.get(k)]


def check_features_fit(run: Run, fs: features_lib.FeatureSet, where: str) -> None:
  """Refuses features a run cannot read: other classes, width, backbone, or too few frames.

  Raises:
    FeatureError: naming `where` and the key that differs.
  """
  meta, spec = run.meta, run.meta["feature_spec"]
  if fs.class_names != run.class_names:
    # Same names in another order would silently swap the labels of the scores.
    order = " (the same names in another order)" if sorted(fs.class_names) == sorted(
        run.class_names) else ""
    raise features_lib.FeatureError(
        f"{where}: its {len(fs.class_names)} classes differ from the {len(run.class_names)} "
        f"run {run.workdir} was trained on{order}")
  if fs.feature_dim != meta["feature_dim"]:
    raise features_lib.FeatureError(
        f"{where}: feature_dim {fs.feature_dim}, run {run.workdir} reads {meta['feature_dim']}")
  if fs.num_frames < meta["num_frames"]:
    raise features_lib.FeatureError(
        f"{where}: num_frames {fs.num_frames}, fewer than the {meta['num_frames']} run "
        f"{run.workdir} was trained on")
  keys = (SAME_FEATURE_KEYS + SAME_SPLIT_KEYS
          + (("seed",) if spec.get("weights") == "random-init" else ()))
  diffs = _spec_diffs(spec, fs.spec, keys)
  if diffs:
    raise features_lib.FeatureError(
        f"{where}: made another way than the features of run {run.workdir} ("
        + "; ".join(diffs) + "); give features extracted like the run's own, from the same "
        "split lists")


def check_own_features(run: Run, fs: features_lib.FeatureSet, where: str) -> None:
  """Refuses a run's own features dir if it now holds other features than it was trained on.

  The dir may have been re-extracted or re-imported since training (another
  crop, image size, frame count, split...): the run's scores on it would be
  silently wrong. `fs` must be subsampled as the run reads it (as in training),
  so its spec hashes to the checkpoint's feature_spec_hash when nothing changed.

  Raises:
    FeatureError: naming `where` and each spec key that differs.
  """
  trained = run.meta.get("feature_spec_hash")
  if trained is None or features_lib.spec_hash(fs.spec) == trained:
    return
  spec = run.meta["feature_spec"]
  diffs = _spec_diffs(spec, fs.spec, sorted(set(spec) | set(fs.spec)))
  raise features_lib.FeatureError(
      f"{where}: holds other features than run {run.workdir} was trained on ("
      + ("; ".join(diffs) or "same settings, other spec hash")
      + "); extract them again with the run's settings, or train the run again on these")


def load_run_features(run: Run, split: str, features_dir: str | os.PathLike | None = None,
                      cache: dict | None = None) -> features_lib.FeatureSet:
  """The split's features as the run reads them: subsampled to its num_frames.

  Args:
    run: a loaded run.
    split: e.g. 'test'.
    features_dir: another features dir made the same way; default the run's own
      (`Run.features_dir`: found again if it moved along with the workdir).
    cache: {(dir, split): FeatureSet} shared by the runs of an ensemble.

  Raises:
    FeatureError: missing shards, a split of no clip, features that do not fit
      (check_features_fit), the run's own dir gone (moved without the workdir) or
      holding other features than it was trained on (check_own_features).
  """
  own = files.absolute(run.features_dir)
  directory = files.absolute(features_dir) if features_dir else own
  if not features_dir and not directory.is_dir():
    raise features_lib.FeatureError(
        f"{directory}: the features run {run.workdir} was trained on are not there (moved?); "
        "give their new place with --features_dir")
  key = (str(directory), split)
  if cache is not None and key in cache:
    fs = cache[key]
  else:
    fs = parts_lib.load_split(directory, split)  # Streamed from the shards when large.
    if cache is not None:
      cache[key] = fs
  where = f"--features_dir {directory}" if features_dir else str(directory)
  parts_lib.check_not_empty(len(fs), directory, split)
  check_features_fit(run, fs, where)
  fs = features_lib.subsample_frames(fs, run.meta["num_frames"])
  if directory == own:
    check_own_features(run, fs, where)
  return fs


def predict_probabilities(run: Run, fs: features_lib.FeatureSet,
                          modes: Sequence[str] = tta_lib.DEFAULT, batch_size: int = 256,
                          desc: str | None = None) -> np.ndarray:
  """f32[n, k] probabilities of every clip of `fs`, averaged over the views of `modes`.

  The views (videojax.tools.tta) act on the positions of `fs`, which must already be
  those the run reads (load_run_features subsamples them).

  Batches of min(batch_size, n) clips; the last is padded with copies of its last
  clip, whose outputs are dropped, so every view of every batch has one shape.

  Raises:
    ValueError: batch_size < 1, or unknown modes.
  """
  if batch_size < 1:
    raise ValueError(f"--batch_size={batch_size} must be at least 1")
  modes = tta_lib.parse_modes(modes)
  n, t = len(fs), fs.num_frames
  size = min(batch_size, n)
  out = np.zeros((n, len(run.class_names)), np.float64)
  bar = Progress(total=n, desc=desc or f"evaluate {run.workdir.name}", unit="clip")
  for start in range(0, n, size):
    stop = min(start + size, n)
    rows = np.minimum(np.arange(start, start + size), stop - 1)
    views = tta_lib.views(fs.features[rows], fs.lengths[rows], modes)
    for features, lengths in views:
      mask = np.arange(t)[None, :] < lengths[:, None]
      probs = np.asarray(run.apply(features, mask), np.float64)
      out[start:stop] += probs[:stop - start]
    out[start:stop] /= len(views)
    bar.update(stop - start)
  bar.close()
  return out.astype(np.float32)


def _check_same_classes(runs: Sequence[Run]) -> None:
  first = runs[0]
  for run in runs[1:]:
    if run.class_names != first.class_names:
      only_a = sorted(set(first.class_names) - set(run.class_names))[:5]
      only_b = sorted(set(run.class_names) - set(first.class_names))[:5]
      detail = (f"only in the first: {only_a}, only in this one: {only_b}"
                if only_a or only_b else "same names in another order")
      raise EnsembleMismatch(
          f"--workdir {run.workdir} has other classes than --workdir {first.workdir} "
          f"({len(run.class_names)} vs {len(first.class_names)}; {detail}); an ensemble "
          "averages runs of one class list")


def _alignment(base: features_lib.FeatureSet, fs: features_lib.FeatureSet, run: Run,
               first: Run, split: str) -> np.ndarray:
  """Indices into `fs` that put its clips in the order of `base`."""
  if len(set(fs.video_ids)) != len(fs.video_ids):
    raise EnsembleMismatch(f"run {run.workdir}: the '{split}' features repeat video ids")
  position = {v: i for i, v in enumerate(fs.video_ids)}
  missing = [v for v in base.video_ids if v not in position]
  extra = sorted(set(fs.video_ids) - set(base.video_ids))
  if missing or extra:
    raise EnsembleMismatch(
        f"--workdir {run.workdir} and --workdir {first.workdir} are evaluated on other "
        f"'{split}' clips: {len(missing)} of the first's missing (e.g. {missing[:3]}), "
        f"{len(extra)} extra (e.g. {extra[:3]}); an ensemble needs the same clips")
  index = np.array([position[v] for v in base.video_ids], np.int64)
  if not np.array_equal(fs.labels[index], base.labels):
    bad = int(np.flatnonzero(fs.labels[index] != base.labels)[0])
    raise EnsembleMismatch(f"--workdir {run.workdir}: clip {base.video_ids[bad]!r} has another "
                           f"label than for --workdir {first.workdir}")
  return index


def _resolve_features_dirs(features_dirs, count: int) -> list:
  if not features_dirs:
    return [None] * count
  features_dirs = [features_dirs] if isinstance(features_dirs, (str, os.PathLike)) else list(
      features_dirs)
  if len(features_dirs) == 1:
    return features_dirs * count
  if len(features_dirs) != count:
    raise ValueError(f"--features_dir: give one (for every run) or one per --workdir "
                     f"({count}); got {len(features_dirs)}")
  return features_dirs


def write_probabilities(path: str | os.PathLike, video_ids: Sequence[str], labels: np.ndarray,
                        probs: np.ndarray, class_names: Sequence[str]) -> pathlib.Path:
  """Writes an .npz of video_ids str[n], labels i32[n], probs f32[n, k], class_names str[k].

  Written to a temporary file beside `path`, then renamed into place.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  with open(tmp, "wb") as f:
    np.savez_compressed(f, video_ids=np.asarray(video_ids, dtype=str),
                        labels=np.asarray(labels, np.int32), probs=np.asarray(probs, np.float32),
                        class_names=np.asarray(class_names, dtype=str))
  os.replace(tmp, path)
  return path


def evaluate(workdirs: str | os.PathLike | Sequence[str | os.PathLike],
             out_dir: str | os.PathLike, split: str = "test",
             tta: str | Sequence[str] = tta_lib.DEFAULT,
             features_dirs: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
             batch_size: int = 256, echo=print) -> dict[str, Any]:
  """Evaluates one run, or the ensemble of several, on `split` and writes the results.

  Args:
    workdirs: run directories (scripts/train.py --workdir); several make an
      ensemble whose probabilities are the mean of the runs'.
    out_dir: gets metrics.json, per_class.csv, confusion.csv, confusion.png and
      probabilities.npz (video_ids, labels, probs, class_names).
    split: the feature split to evaluate, e.g. 'test'.
    tta: test-time views (videojax.tools.tta.MODES, or a comma string); each
      run's probabilities are the mean over all views.
    features_dirs: None for each run's own features; one dir for every run; or
      one per run. A dir other than a run's own must be made the same way.
    batch_size: clips per jitted call.
    echo: prints the one-line summary.

  Returns:
    The content of metrics.json: the metrics of
    `metrics.classification_metrics` (without the confusion matrix) and what
    was evaluated (runs, steps, features, split, views).

  Raises:
    FileNotFoundError: a workdir without checkpoints.
    FeatureError: missing shards, a split of no clip, features that do not fit a
      run, or a run's own features dir changed since it was trained.
    EnsembleMismatch: runs with other class lists or other clips.
    ValueError: unknown tta modes, a bad batch_size or features_dirs count.
  """
  workdirs = ([workdirs] if isinstance(workdirs, (str, os.PathLike)) else list(workdirs))
  if not workdirs:
    raise ValueError("--workdir: give at least one run directory")
  modes = tta_lib.parse_modes(tta)
  dirs = _resolve_features_dirs(features_dirs, len(workdirs))
  loaded: dict[str, Run] = {}  # A run given twice is loaded and compiled once.
  for w in workdirs:
    key = str(files.absolute(w))
    if key not in loaded:
      loaded[key] = load_run(w)
  runs = [loaded[str(files.absolute(w))] for w in workdirs]
  _check_same_classes(runs)
  cache: dict = {}
  sets = [load_run_features(run, split, d, cache) for run, d in zip(runs, dirs)]
  base = sets[0]
  indices = [_alignment(base, fs, run, runs[0], split) for run, fs in zip(runs, sets)]
  total = np.zeros((len(base), len(runs[0].class_names)), np.float64)
  for i, (run, fs, index) in enumerate(zip(runs, sets, indices)):
    total += predict_probabilities(run, fs, modes, batch_size,
                                   desc=f"evaluate {i + 1}/{len(runs)} {run.workdir.name}")[index]
  described = [{"workdir": str(run.workdir.absolute()), "step": run.step, "chosen": run.chosen,
                "model": run.meta["model"], "num_frames": run.meta["num_frames"],
                "feature_dim": run.meta["feature_dim"],
                "features_dir": str(files.absolute(d or run.features_dir))}
               for run, d in zip(runs, dirs)]
  probs = (total / len(runs)).astype(np.float32)
  class_names = runs[0].class_names
  metrics = metrics_lib.classification_metrics(probs, base.labels, class_names)
  confusion = metrics.pop("confusion")

  out_dir = pathlib.Path(out_dir)
  report = {**metrics, "split": split, "tta": list(modes),
            "num_views": tta_lib.num_views(modes), "runs": described}
  write_json_atomic(out_dir / "metrics.json", report)
  metrics_lib.write_per_class_csv(out_dir / "per_class.csv", metrics["per_class"])
  metrics_lib.write_confusion_csv(out_dir / "confusion.csv", confusion, class_names)
  plots.confusion_png(out_dir / "confusion.png", confusion, class_names)
  write_probabilities(out_dir / "probabilities.npz", base.video_ids, base.labels, probs,
                      class_names)
  top5 = metrics["top5_accuracy"]
  echo(f"{len(runs)} run(s), {split} split, views {','.join(modes)}: top-1 "
       f"{metrics['top1_accuracy']:.4f}"
       + (f", top-5 {top5:.4f}" if top5 is not None else "")
       + f", ECE {metrics['ece']:.4f}, macro F1 {metrics['macro_f1']:.4f} on {metrics['num_examples']} clips "
       f"({'; '.join(run.chosen for run in runs)}); "
       f"results in {out_dir}")
  return report
