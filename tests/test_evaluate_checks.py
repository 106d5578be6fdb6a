"""Results you can trust: evaluation refuses features a run was not trained on, and empty splits."""
import shutil

import numpy as np
import pytest

from tests import test_multihost
from tests.test_evaluate import CLASSES, QUIET, _save_untrained, _write_features
from videojax import train
from videojax.data import features as F
from videojax.tools import evaluate as evaluate_lib


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """An untrained mean-pool saved as training saves it, on its own features dir."""
  base = tmp_path_factory.mktemp("checks")
  features = _write_features(base / "features")
  return {"base": base, "features": features,
          "workdir": _save_untrained(features, base / "run", "meanpool")}


def _files(directory):
  """{name: bytes} of a directory's files, to show that nothing was changed."""
  return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.mark.parametrize("spec, message", [
    ({"crop": "start"}, "crop: run None, features 'start'"),
    ({"image_size": 160}, "image_size: run None, features 160"),
])
def test_own_features_dir_replaced_since_training_is_refused(tmp_path, spec, message):
  features = _write_features(tmp_path / "features")
  workdir = _save_untrained(features, tmp_path / "run", "meanpool")
  shutil.rmtree(features)  # Re-extracted with other settings after training.
  _write_features(features, **spec)
  before = _files(features)
  with pytest.raises(F.FeatureError, match=f"{features}: holds other features than run "
                     f".* was trained on \\({message}\\); extract them again"):
    evaluate_lib.evaluate(workdir, tmp_path / "out", **QUIET)
  assert not (tmp_path / "out").exists()
  assert _files(features) == before
  with pytest.raises(F.FeatureError, match=message):  # Given as --features_dir too.
    evaluate_lib.evaluate(workdir, tmp_path / "out", features_dirs=features, **QUIET)


def test_features_dir_of_another_split_is_refused(run, tmp_path):
  # Same backbone and classes, but other split lists: its test clips may be training clips.
  other = _write_features(tmp_path / "split2", labels="split 2")
  with pytest.raises(F.FeatureError, match=f"--features_dir {other}: made another way .*"
                     "labels: run 'test', features 'split 2'\\); give features extracted like"):
    evaluate_lib.evaluate(run["workdir"], tmp_path / "out", features_dirs=other, **QUIET)
  assert not (tmp_path / "out").exists()


def test_features_of_another_class_order_are_refused(run, tmp_path):
  reordered = _write_features(tmp_path / "reordered", classes=CLASSES[::-1])
  with pytest.raises(F.FeatureError, match=f"--features_dir {reordered}: its 6 classes differ "
                     r"from the 6 run .* \(the same names in another order\)"):
    evaluate_lib.evaluate(run["workdir"], tmp_path / "out", features_dirs=reordered, **QUIET)
  assert not (tmp_path / "out").exists()


def test_own_features_unchanged_still_evaluate(run, tmp_path):
  report = evaluate_lib.evaluate(run["workdir"], tmp_path / "out", **QUIET)
  assert report["num_examples"] == 24


def _empty_test_split(directory):
  """Keeps the train shard and makes the test shard one of 0 clips (every clip failed)."""
  path = directory / F.shard_name("test", 0, 1)
  attrs = F.read_shard_attrs(path)
  fs = F.load_split(directory, "test")
  F.write_shard(path, features=np.zeros((0, fs.num_frames, fs.feature_dim)),
                lengths=np.zeros(0), labels=np.zeros(0), video_ids=[],
                class_names=attrs["class_names"], spec=attrs["spec"],
                failed=[[v, "unreadable"] for v in fs.video_ids])


def test_evaluate_refuses_a_test_split_of_no_clip(run, tmp_path):
  features = tmp_path / "features"
  shutil.copytree(run["features"], features)
  _empty_test_split(features)
  with pytest.raises(F.FeatureError, match=f"{features}: the 'test' shards "
                     f"hold no clip .*see {features}/failed_videos.csv"):
    evaluate_lib.evaluate(run["workdir"], tmp_path / "out", features_dirs=features, **QUIET)
  assert not (tmp_path / "out").exists()


def test_training_refuses_a_test_split_of_no_clip_before_training(tmp_path):
  features = tmp_path / "features"
  features.mkdir()
  test_multihost._write_features(features, "train", 2, 8, seed=0)
  test_multihost._write_features(features, "test", 1, 4, seed=1)
  _empty_test_split(features)
  before = _files(features)
  with pytest.raises(F.FeatureError, match=f"{features}: the 'test' shards hold no clip .*see "
                     f"{features}/failed_videos.csv"):
    train.train_and_evaluate(test_multihost._config(features), str(tmp_path / "run"),
                             echo=lambda *_: None)
  assert not (tmp_path / "run").exists()
  assert _files(features) == before
