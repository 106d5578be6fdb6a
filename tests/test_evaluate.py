"""Evaluation of trained runs: test-time views, the whole evaluate() on tiny runs, ensembles.

The metrics themselves are cross-checked with scikit-learn in tests/test_metrics.py.
The runs here read features written directly (no videos, no backbone): one mean-pool
is trained (two epochs, to compare with its results.json); the others are initialised
models saved with the trainer's own checkpoint functions, which is all evaluation reads.
"""
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys

import cv2
import jax
import numpy as np
import pytest

from configs import keras_cnn_rnn
from videojax import runs as runs_lib
from videojax import train
from videojax.checkpoint import Checkpoints
from videojax.data import features as F
from videojax.tools import evaluate as evaluate_lib
from videojax.tools import tta

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLASSES = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"]
SPEC = {"format_version": F.FORMAT_VERSION, "backbone": "imported", "source": "synthetic",
        "key": None, "num_frames": 8, "feature_dim": 12, "labels": "test"}


# ------------------------------------------------------------------------------- views

def _ramp(lengths, t=8):
  """f32[n, t, 2]: position p of a clip holds (p + 1, -(p + 1)); padding holds 99 (garbage)."""
  lengths = np.asarray(lengths)
  p = np.arange(1, t + 1, dtype=np.float32)
  x = np.stack([p, -p], -1)[None].repeat(len(lengths), 0)
  x[np.arange(t)[None] >= lengths[:, None]] = 99
  return x, lengths


def _values(features, lengths):
  """The first channel of each clip up to its length, and checks the rest is zero."""
  assert features.shape[1:] == (8, 2)
  np.testing.assert_array_equal(features[..., 1], -features[..., 0])  # rows move whole
  pad = np.arange(8)[None] >= lengths[:, None]
  assert not features[pad].any(), "padding must be zeros"
  return [features[i, :n, 0].astype(int).tolist() for i, n in enumerate(lengths)]


@pytest.mark.parametrize("mode, want", [
    ("original", [[[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5], [1], []]]),
    ("reversed", [[[8, 7, 6, 5, 4, 3, 2, 1], [5, 4, 3, 2, 1], [1], []]]),
    ("faster", [[[1, 3, 5, 7], [1, 3, 5], [1], []]]),
    # The middle half (L // 2 positions, from (L - L // 2) // 2), each twice.
    ("slower", [[[3, 3, 4, 4, 5, 5, 6, 6], [2, 2, 3, 3], [1, 1], []]]),
    # Starts floor(j * L / 8), j = 1, 2, 3, at most L - 1.
    ("offsets", [[[2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5], [1], []],
                 [[3, 4, 5, 6, 7, 8], [2, 3, 4, 5], [1], []],
                 [[4, 5, 6, 7, 8], [2, 3, 4, 5], [1], []]]),
])
def test_each_view_on_hand_made_clips(mode, want):
  features, lengths = _ramp([8, 5, 1, 0])
  views = tta.views(features, lengths, [mode])
  got = [_values(f, n) for f, n in views]
  assert got == want
  assert [n.tolist() for _, n in views] == [[len(c) for c in v] for v in want]
  assert all(f.dtype == features.dtype for f, _ in views)
  assert tta.num_views([mode]) == len(want)


def test_views_of_several_modes_come_in_order_and_unknown_modes_are_named():
  features, lengths = _ramp([8, 3])
  views = tta.views(features, lengths, "original,faster,original")  # repeats count once
  assert [_values(f, n) for f, n in views] == [[[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3]],
                                               [[1, 3, 5, 7], [1, 3]]]
  with pytest.raises(ValueError, match=r"--tta=original,backwards: unknown mode\(s\) "
                     "backwards; accepted: original, reversed, faster, slower, offsets"):
    tta.parse_modes("original,backwards")
  with pytest.raises(ValueError, match="no mode"):
    tta.parse_modes("")
  with pytest.raises(ValueError, match=r"lengths must be i32\[n\] in \[0, 8\]"):
    tta.views(features, np.array([9, 1]), ["original"])


# ------------------------------------------------------------------------------- runs

def _write_features(directory, classes=CLASSES, dim=12, noise_seed=0, drop_test=0,
                    reverse_test=False, **spec):
  """Train and test shards of clips whose frames are a class prototype plus noise."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True)
  protos = np.random.default_rng(100).normal(size=(len(CLASSES), dim))  # same in every dir
  rng = np.random.default_rng(noise_seed)
  for split, groups in [("train", range(1, 7)), ("test", range(7, 9))]:
    ids, labels = [], []
    for c, name in enumerate(classes):
      for g in groups:
        for clip in (1, 2):
          ids.append(f"{name}/v_{name}_g{g:02d}_c{clip:02d}")
          labels.append(c)
    labels = np.array(labels)
    lengths = rng.integers(3, 9, len(ids))
    x = protos[labels][:, None] + 1.5 * rng.normal(size=(len(ids), 8, dim))
    x[np.arange(8)[None] >= lengths[:, None]] = 0
    if split == "test":  # the same clips, fewer or in another order
      keep = np.arange(drop_test, len(ids))
      keep = keep[::-1] if reverse_test else keep
      ids, labels, lengths, x = [ids[i] for i in keep], labels[keep], lengths[keep], x[keep]
    F.write_shard(directory / F.shard_name(split, 0, 1), features=x,
                  lengths=lengths, labels=labels, video_ids=ids, class_names=classes,
                  spec={**SPEC, "feature_dim": dim, **spec})
  return directory


def _config(features_dir, model, num_frames=SPEC["num_frames"], epochs=2):
  c = keras_cnn_rnn.get_config()  # The plain recipe: constant rate, no augmentation.
  c.data.features_dir, c.data.num_frames, c.data.val_fraction = str(features_dir), num_frames, 0.34
  c.model.name = model
  c.model.gru.hidden = (8,)  # One layer: half the compile time of the default two.
  c.train.num_devices, c.train.batch_size, c.train.num_epochs = 1, 8, epochs
  c.train.learning_rate = 3e-3
  c.eval.batch_size = 8
  return c


def _save_untrained(features_dir, workdir, model):
  """A run directory holding an initialised model, saved as training saves its checkpoints.

  Why: training a recurrent model costs more compile time than these tests may take.
  """
  c = _config(features_dir, model)
  fs = F.load_split(features_dir, "train")
  init = functools.partial(train.create_train_state, c, len(fs.class_names), fs.num_frames,
                           fs.feature_dim)
  if model == "gru":  # An eager init runs the GRU's scan op by op: seconds.
    init = jax.jit(init)
  state = init(*train.feature_statistics(fs))
  ckpts = Checkpoints(pathlib.Path(workdir) / "checkpoints")
  ckpts.save(1, state, train.run_meta(c, fs))
  ckpts.wait()
  ckpts.close()
  return workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A trained mean-pool on 6 of 8 positions; an untrained GRU on all 8; one of other classes."""
  first = tmp_path_factory.mktemp("evaluate_before_move")
  feats = _write_features(first / "features")
  (feats / F.BACKBONE_FILE).write_bytes(b"weights")  # As extraction leaves it.
  results = train.train_and_evaluate(_config(feats, "meanpool", num_frames=6),
                                     str(first / "meanpool"), echo=lambda *_: None)
  # Workdirs are portable: every test here reads the run after it moved with its features.
  base = tmp_path_factory.mktemp("evaluate")
  shutil.move(first / "features", base / "features")
  shutil.move(first / "meanpool", base / "meanpool")
  feats = base / "features"
  renamed = [*CLASSES[:-1], "Omega"]
  return {"features": feats, "meanpool": base / "meanpool", "results": results,
          "gru": _save_untrained(feats, base / "gru", "gru"),
          "other_classes": _save_untrained(_write_features(base / "other", classes=renamed),
                                           base / "other_classes", "meanpool")}


QUIET = {"echo": lambda *_: None}


@pytest.fixture(scope="module")
def single(runs, tmp_path_factory):
  """evaluate() of the trained mean-pool alone: its output dir and report."""
  out = tmp_path_factory.mktemp("single")
  return out, evaluate_lib.evaluate([runs["meanpool"]], out, batch_size=5, **QUIET)


def _probs(out):
  with np.load(out / "probabilities.npz") as z:
    return {k: z[k] for k in z.files}


def test_evaluate_writes_every_file_and_top1_equals_training(runs, single):
  out, report = single
  results = runs["results"]
  assert report["top1_accuracy"] == results["accuracy"]
  # The same ECE from the jitted per-bin sums of training and from the saved probabilities.
  assert 0 < report["ece"] == pytest.approx(results["test_ece"], abs=1e-5)
  assert "val_ece" in results
  assert report["num_examples"] == results["num_examples"] == 24
  assert report["runs"][0]["step"] == results["best_step"]
  assert report["runs"][0]["num_frames"] == 6 and report["num_views"] == 1
  assert json.loads((out / "metrics.json").read_text()) == report
  assert (out / "confusion.csv").read_text() == (runs["meanpool"] / "confusion.csv").read_text()
  rows = (out / "per_class.csv").read_text().splitlines()
  assert rows[0].startswith("class,support,") and len(rows) == 1 + len(CLASSES)
  image = cv2.imread(str(out / "confusion.png"))
  assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
  assert image.std() > 0  # not a blank canvas
  p = _probs(out)
  assert p["probs"].shape == (24, len(CLASSES)) and p["probs"].dtype == np.float32
  np.testing.assert_allclose(p["probs"].sum(1), 1, rtol=1e-5)
  assert list(p["class_names"]) == CLASSES and len(set(p["video_ids"])) == 24
  assert not list(out.glob(".*tmp*"))


def test_ensemble_of_one_run_twice_equals_the_run_aligned_by_video_id(runs, single, tmp_path):
  twice = evaluate_lib.evaluate([runs["meanpool"]] * 2, tmp_path / "twice", **QUIET)
  np.testing.assert_array_equal(_probs(tmp_path / "twice")["probs"], _probs(single[0])["probs"])
  assert {k: v for k, v in twice.items() if k != "runs"} == {
      k: v for k, v in single[1].items() if k != "runs"}
  # The same clips in reverse order: the ensemble must pair clips by video_id, not position.
  flipped = _write_features(tmp_path / "flipped", reverse_test=True)
  evaluate_lib.evaluate([runs["meanpool"]] * 2, tmp_path / "flipped_eval", **QUIET,
                        features_dirs=[runs["features"], flipped])
  got, want = _probs(tmp_path / "flipped_eval"), _probs(single[0])
  assert list(got["video_ids"]) == list(want["video_ids"])
  np.testing.assert_allclose(got["probs"], want["probs"], rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def loaded(runs):
  """The runs loaded once, so each compiles once for the module."""
  return {name: evaluate_lib.load_run(runs[name]) for name in ("meanpool", "gru")}


def test_views_are_averaged_and_reversal_keeps_masks_right(runs, loaded):
  fs = F.load_split(runs["features"], "test")
  fs6 = F.subsample_frames(fs, 6)
  p = {m: evaluate_lib.predict_probabilities(loaded["meanpool"], fs6, [m])
       for m in ("original", "reversed", "faster")}
  # Order-blind model: reversing the real positions changes nothing, if the mask follows them.
  np.testing.assert_allclose(p["reversed"], p["original"], rtol=1e-5, atol=1e-6)
  assert not np.allclose(p["faster"], p["original"], atol=1e-4)
  both = evaluate_lib.predict_probabilities(loaded["meanpool"], fs6, ["original", "faster"])
  np.testing.assert_allclose(both, (p["original"] + p["faster"]) / 2, rtol=1e-5, atol=1e-6)
  g = [evaluate_lib.predict_probabilities(loaded["gru"], fs, [m]) for m in ("original", "reversed")]
  assert not np.allclose(g[0], g[1], atol=1e-4)  # a recurrent model sees the order


def test_mismatched_ensembles_are_refused(runs, tmp_path):
  run = runs["meanpool"]
  with pytest.raises(evaluate_lib.EnsembleMismatch, match="other classes.*only in the first: "
                     r"\['Zeta'\], only in this one: \['Omega'\]"):
    evaluate_lib.evaluate([run, runs["other_classes"]], tmp_path / "x")
  fewer = _write_features(tmp_path / "fewer", drop_test=2)
  with pytest.raises(evaluate_lib.EnsembleMismatch,
                     match="other 'test' clips: 2 of the first's missing"):
    evaluate_lib.evaluate([run, run], tmp_path / "x", features_dirs=[runs["features"], fewer])
  with pytest.raises(ValueError, match=r"--features_dir: give one .* or one per --workdir \(2\)"):
    evaluate_lib.evaluate([run, run], tmp_path / "x", features_dirs=[fewer] * 3)
  with pytest.raises(FileNotFoundError, match="no checkpoints/"):
    evaluate_lib.evaluate([tmp_path], tmp_path / "x")
  assert not (tmp_path / "x").exists()


def test_features_dir_override_must_be_made_the_same_way(runs, single, tmp_path):
  crop = _write_features(tmp_path / "crop", noise_seed=1, crop="start")  # extract.crop=start
  report = evaluate_lib.evaluate(runs["meanpool"], tmp_path / "crop_eval", features_dirs=crop,
                                 **QUIET)
  assert report["runs"][0]["features_dir"] == str(crop.absolute())
  assert not np.allclose(_probs(tmp_path / "crop_eval")["probs"], _probs(single[0])["probs"])
  # Spatial test-time views: the run on its own (centre) features and on the start crop.
  evaluate_lib.evaluate([runs["meanpool"]] * 2, tmp_path / "crops_eval", **QUIET,
                        features_dirs=[runs["features"], crop])
  np.testing.assert_allclose(
      _probs(tmp_path / "crops_eval")["probs"],
      (_probs(tmp_path / "crop_eval")["probs"].astype(np.float64)
       + _probs(single[0])["probs"]) / 2, rtol=1e-6, atol=1e-7)
  for name, kwargs, message in [
      ("narrow", {"dim": 8}, "feature_dim 8, run .* reads 12"),
      ("resnet", {"backbone": "resnet18"}, "made another way .*backbone: run 'imported', "
                                           "features 'resnet18'")]:
    bad = _write_features(tmp_path / name, **kwargs)
    with pytest.raises(F.FeatureError, match=f"--features_dir {bad}: {message}"):
      evaluate_lib.evaluate(runs["meanpool"], tmp_path / "x", features_dirs=[bad])


def test_a_copied_workdir_is_told_where_its_features_moved(runs, loaded, tmp_path):
  """The fixture moved its runs with their features; a copy of a workdir alone is told
  where the features went (--features_dir) and predicts as the original."""
  run = loaded["meanpool"]
  assert run.features_dir == runs["features"] and runs["features"].name == "features"
  assert run.backbone_dir == runs["meanpool"]  # Predict's backbone: the workdir's copy.
  assert (run.backbone_dir / F.BACKBONE_FILE).read_bytes() == b"weights"
  copy = evaluate_lib.load_run(shutil.copytree(runs["meanpool"], tmp_path / "copy"))
  with pytest.raises(F.FeatureError, match="are not there .*give their new place with "
                     "--features_dir"):
    evaluate_lib.load_run_features(copy, "test")
  fs = evaluate_lib.load_run_features(copy, "test", runs["features"])
  np.testing.assert_array_equal(evaluate_lib.predict_probabilities(copy, fs),
                                evaluate_lib.predict_probabilities(run, fs))
  assert runs_lib.features_dir_meta("/x/f", "/x/w") == {"features_dir": "/x/f",
                                                        "features_dir_relative": "../f"}


def test_script_evaluates_an_ensemble_of_two_models_with_views(runs, loaded, tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  cmd = [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"--workdir={runs['meanpool']}",
         f"--workdir={runs['gru']}", f"--out={tmp_path}", "--tta=original,slower",
         "--batch_size=7"]
  done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert done.returncode == 0, done.stderr
  assert "2 run(s), test split, views original,slower: top-1" in done.stdout
  report = json.loads((tmp_path / "metrics.json").read_text())
  assert report["tta"] == ["original", "slower"] and report["num_views"] == 2
  assert [(r["model"], r["num_frames"]) for r in report["runs"]] == [("meanpool", 6), ("gru", 8)]
  # Models with different num_frames: each reads its own subsampling; probabilities averaged.
  fs = F.load_split(runs["features"], "test")
  want = sum(evaluate_lib.predict_probabilities(loaded[m], F.subsample_frames(fs, t),
                                                ["original", "slower"]).astype(np.float64)
             for m, t in [("meanpool", 6), ("gru", 8)]) / 2
  np.testing.assert_allclose(_probs(tmp_path)["probs"], want, rtol=1e-5, atol=1e-6)


def test_a_streamed_split_evaluates_as_the_split_in_memory(runs, single, loaded, tmp_path,
                                                          monkeypatch):
  """Over IN_MEMORY_MAX_BYTES a split stays on disk (a ShardArray read batch by batch):
  the same probabilities, bit for bit, with and without test-time views."""
  from videojax.data import parts as parts_lib
  from videojax.data.stream import ShardArray
  in_memory = F.subsample_frames(F.load_split(runs["features"], "test"), 6)
  monkeypatch.setattr(parts_lib, "IN_MEMORY_MAX_BYTES", 0)
  streamed = F.subsample_frames(parts_lib.load_split(runs["features"], "test"), 6)
  assert isinstance(streamed.features, ShardArray)
  assert streamed.video_ids == in_memory.video_ids
  modes = ["original", "reversed", "faster"]
  np.testing.assert_array_equal(
      evaluate_lib.predict_probabilities(loaded["meanpool"], streamed, modes, batch_size=7),
      evaluate_lib.predict_probabilities(loaded["meanpool"], in_memory, modes, batch_size=7))
  report = evaluate_lib.evaluate([runs["meanpool"]], tmp_path / "s", batch_size=5, **QUIET)
  np.testing.assert_array_equal(_probs(tmp_path / "s")["probs"], _probs(single[0])["probs"])
  assert report["top1_accuracy"] == single[1]["top1_accuracy"]
