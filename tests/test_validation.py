"""The validation split: groups stored in the shards, the no-group warning, val_list, and
validation metrics reported beside test ones."""
import json

import numpy as np
import pytest

from videojax import train
from videojax.data import features as F
from videojax.data import validation

from tests.test_multihost import CLASSES, D, T, _config


def _shard(directory, split, ids, labels, j=0, count=1, groups=None):
  """One shard of the given clips (features: class offset plus noise, all frames real)."""
  rng = np.random.default_rng(j + 10 * len(split))
  labels = np.asarray(labels)
  return F.write_shard(directory / F.shard_name(split, j, count),
                       features=rng.normal(size=(len(ids), T, D)) + labels[:, None, None],
                       lengths=np.full(len(ids), T), labels=labels, video_ids=ids,
                       class_names=CLASSES, spec={"backbone": "test", "num_frames": T},
                       groups=groups)


def _near_duplicates(sources=4, clips=3):
  """Ids '<class>/<class><s>_clip<k>': `clips` cuts of each of `sources` videos per class."""
  ids = [f"{c}/{c}{s}_clip{k}" for c in CLASSES for s in range(sources)
         for k in range(1, clips + 1)]
  labels = [CLASSES.index(v.split("/")[0]) for v in ids]
  return ids, labels


def _source(video_id):
  return video_id.rsplit("_", 1)[0]


def _index(directory):
  return F.read_index(directory, "train")[0]


def test_shards_store_groups_and_older_shards_have_none(tmp_path):
  ids, labels = _near_duplicates(sources=2, clips=2)
  groups = [_source(v) if i % 3 else "" for i, v in enumerate(ids)]
  _shard(tmp_path, "train", ids[:5], labels[:5], 0, 2, groups=groups[:5])
  _shard(tmp_path, "train", ids[5:], labels[5:], 1, 2, groups=groups[5:])
  index = _index(tmp_path)
  assert index.groups == groups
  assert index.take([3, 1]).groups == [groups[3], groups[1]]
  assert F.concat([index.take([0]), index.take([2])]).groups == [groups[0], groups[2]]
  # A shard written before groups were stored: the split recomputes them from names.
  _shard(tmp_path, "train", ids[5:], labels[5:], 1, 2)
  assert _index(tmp_path).groups is None
  assert F.load_split(tmp_path, "train").video_ids == ids  # the shard itself reads as before
  with pytest.raises(F.FeatureError, match=r"train-00000-of-00001.h5: 2 groups for 3 examples"):
    _shard(tmp_path, "train", ids[:3], labels[:3], groups=groups[:2])
  assert not (tmp_path / F.shard_name("train", 0, 1)).exists()


def test_stored_groups_keep_near_duplicate_clips_of_one_video_on_one_side(tmp_path):
  ids, labels = _near_duplicates()
  # Stored groups that names alone would not give ('<class>/<class><s>' kept in a CSV column).
  _shard(tmp_path, "train", ids, labels, groups=[f"video-{_source(v)}" for v in ids])
  messages = []
  rest, held = validation.split_validation(_index(tmp_path), 0.25, seed=0,
                                           echo=messages.append)
  assert len(held) == 9 and len(rest) == 27 and messages == []
  assert not {_source(v) for v in rest.video_ids} & {_source(v) for v in held.video_ids}
  assert sorted(rest.video_ids + held.video_ids) == sorted(ids)


def test_clips_without_group_warn_once_and_split_clip_by_clip(tmp_path):
  ids = [f"{c}/{c}{i}" for c in CLASSES for i in range(4)]  # 'a/a0': no pattern tells
  labels = [CLASSES.index(c) for c in CLASSES for _ in range(4)]
  groups = [""] * 8 + [f"c/g{i // 2}" for i in range(4)]  # class c: 2 known groups
  _shard(tmp_path, "train", ids, labels, groups=groups)
  messages = []
  rest, held = validation.split_validation(_index(tmp_path), 0.5, seed=0,
                                           echo=messages.append)
  assert len(messages) == 1
  assert messages[0].startswith("WARNING: 8 of 12 training clips have no group")
  assert "'group' column" in messages[0] and "--config.data.val_list=FILE" in messages[0]
  assert "\n" not in messages[0]
  # Classes a and b: half their clips, one by one; class c: one of its two groups, whole.
  assert len([v for v in held.video_ids if v < "c"]) == 4
  assert {v for v in held.video_ids if v.startswith("c/")} in ({"c/c0", "c/c1"}, {"c/c2", "c/c3"})
  # No hold-out, no warning.
  assert validation.split_validation(_index(tmp_path), 0.0, 0, echo=messages.append)[1].video_ids \
      == [] and len(messages) == 1


def test_val_list_holds_out_exactly_the_listed_clips(tmp_path):
  ids, labels = _near_duplicates(sources=2, clips=2)
  _shard(tmp_path, "train", ids, labels, groups=[""] * len(ids))
  listed = tmp_path / "val.txt"
  listed.write_text(f"# held out by hand\r\n{ids[5]}\n\n  {ids[0]}  # first clip\n")
  messages = []
  rest, held = validation.split_validation(_index(tmp_path), 0.25, 0, val_list=str(listed),
                                           echo=messages.append)
  assert held.video_ids == [ids[0], ids[5]] and rest.video_ids == ids[1:5] + ids[6:]
  assert messages == []  # The user chose: no group warning.
  # Known groups cut in two by the list: one warning naming them.
  _shard(tmp_path, "train", ids, labels, groups=[_source(v) for v in ids])
  rest, held = validation.split_validation(_index(tmp_path), 0.25, 0, val_list=str(listed),
                                           echo=messages.append)
  assert held.video_ids == [ids[0], ids[5]]
  assert messages == [f"WARNING: {listed} (config.data.val_list) holds out some clips of 2 "
                      f"group(s) and trains on the others ('{_source(ids[0])}', "
                      f"'{_source(ids[5])}'); near-duplicates on both sides inflate validation "
                      "accuracy: list whole groups"]


@pytest.mark.parametrize("text, message", [
    ("a/a0_clip1\na/nope\n", r"val.txt:2: 'a/nope' is not a clip of the training features "
                             r"\(config.data.val_list\)"),
    ("a/a0_clip1\n#\na/a0_clip1\n", r"val.txt:3: 'a/a0_clip1' is listed twice \(also line 1\)"),
    ("# nothing\n\n", r"val.txt: lists no video_id"),
    (None, r"val.txt: file not found \(config.data.val_list\)"),
])
def test_val_list_errors_name_the_file_and_line(tmp_path, text, message):
  ids, labels = _near_duplicates(sources=1, clips=2)
  _shard(tmp_path, "train", ids, labels)
  if text is not None:
    (tmp_path / "val.txt").write_text(text)
  with pytest.raises(ValueError, match=message):
    validation.split_validation(_index(tmp_path), 0.25, 0, val_list=str(tmp_path / "val.txt"))


def _train(tmp_path, name, **overrides):
  lines = []
  c = _config(tmp_path / "features", **{"model.name": "meanpool", "train.num_devices": 2,
                                        "train.batch_size": 4, "eval.batch_size": 4,
                                        **overrides})
  workdir = tmp_path / name
  results = train.train_and_evaluate(c, str(workdir), echo=lambda m: lines.append(str(m)))
  return results, lines, workdir


@pytest.fixture
def no_group_features(tmp_path):
  """A train split whose clip names tell no group (and no groups stored), and a test split."""
  d = tmp_path / "features"
  d.mkdir()
  ids = [f"{c}/{c}{i}" for c in CLASSES for i in range(6)]
  _shard(d, "train", ids, [CLASSES.index(v[0]) for v in ids])
  _shard(d, "test", ["a/t0", "b/t1", "c/t2"], [0, 1, 2])
  return d


def test_training_warns_once_and_reports_validation_beside_test(tmp_path, no_group_features):
  results, lines, workdir = _train(tmp_path, "run", **{"data.val_fraction": 0.34})
  warnings = [m for m in lines if "have no group" in m]
  assert len(warnings) == 1 and warnings[0].startswith("WARNING: 18 of 18 training clips")
  on_disk = json.loads((workdir / "results.json").read_text())
  for r in (results, on_disk):
    assert r["num_val"] == 6 and r["num_examples"] == 3
    assert 0 <= r["val_accuracy"] <= 1 and np.isfinite(r["val_loss"])
    assert 0 <= r["accuracy"] <= 1 and np.isfinite(r["test_loss"])
  # The best step's validation accuracy is the one its epoch logged.
  logged = {m["step"]: m for m in map(json.loads,
                                      (workdir / "metrics.jsonl").read_text().splitlines())}
  assert results["val_accuracy"] == pytest.approx(logged[results["best_step"]]["val_accuracy"])
  assert lines[-1] == (f"meanpool: val accuracy {results['val_accuracy']:.4f} (best step "
                       f"{results['best_step']}), test accuracy {results['accuracy']:.4f} on "
                       f"3 clips; results in {workdir}")


def test_training_holds_out_the_val_list(tmp_path, no_group_features):
  listed = tmp_path / "val.txt"
  listed.write_text("a/a0\nb/b1\nc/c2\n")
  results, lines, _ = _train(tmp_path, "run", **{"data.val_list": str(listed)})
  assert results["num_val"] == 3 and results["num_train"] == 15
  assert not [m for m in lines if "have no group" in m]


def test_the_held_out_groups_follow_val_seed_not_the_run_seed(tmp_path, monkeypatch):
  """Seeds of an ablation vary training, not its data: train.seed leaves the split alone."""
  ids, labels = _near_duplicates(sources=8, clips=1)
  _shard(tmp_path, "train", ids, labels, groups=[_source(v) for v in ids])
  taken = []
  monkeypatch.setattr(train.parts_lib, "load_parts",
                      lambda *a, split_validation, **k: taken.append(split_validation))
  c = _config(tmp_path)
  held = {}
  for run_seed, val_seed in [(0, 0), (1, 0), (0, 3)]:
    c.train.seed, c.data.val_seed = run_seed, val_seed
    train.load_data(c)
    held[run_seed, val_seed] = taken[-1](_index(tmp_path))[1].video_ids
  assert held[0, 0] == held[1, 0]
  assert held[0, 0] != held[0, 3]  # val_seed does pick the groups
